"""Read-side queries for the providers pages, in a constant number of SQL statements."""
from __future__ import annotations

import functools
import itertools
import math
import time
from dataclasses import dataclass, field
from typing import NamedTuple

from flask import abort, current_app
from sqlalchemy import BigInteger, bindparam, cast, event, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import load_only, selectinload
from sqlalchemy.sql.functions import FunctionElement

from ..extensions import db
from ..models import Organization, Provider, Status, Workspace, provider_organizations
from ..web import arg_int

PAGE_SIZE = 50
SEARCH_MAX = 64
# How long the badge poll may answer from a fingerprint already read (see status_fingerprint):
# well under the poll's interval, so a change elsewhere reaches a page at most this much later.
FINGERPRINT_SECONDS = 1.0
FINGERPRINT_CACHE_SIZE = 256

# The columns a row of the list shows (and the fingerprint reads); the rest stay unloaded.
ROW_COLUMNS = (Provider.name, Provider.namespace, Provider.cluster_address, Provider.status,
               Provider.status_message, Provider.status_warnings, Provider.cordoned,
               Provider.cordon_reason, Provider.kube_version, Provider.last_checked_at,
               Provider.display_version, Provider.created_at)


def get_provider_or_404(provider_id: int) -> Provider:
    provider = db.session.get(Provider, provider_id)
    if provider is None:
        abort(404)
    return provider


@dataclass
class Scope:
    """What one badge poll covers: a page of the list (search and page number), or the one
    provider of a provider's page."""

    q: str = ""
    page: int = 1
    provider_id: int | None = None

    @classmethod
    def from_args(cls, args) -> Scope:
        provider_id = arg_int(args, "provider")
        if provider_id is not None:
            return cls(provider_id=provider_id)
        return cls.list_from_args(args)

    @classmethod
    def list_from_args(cls, args) -> Scope:
        """A page of the list, whatever else the query string holds."""
        return cls(q=args.get("q", "").strip()[:SEARCH_MAX], page=arg_int(args, "page", 1))

    @property
    def is_list(self) -> bool:
        return self.provider_id is None

    @property
    def args(self) -> dict:
        """The query string that names this scope (empty for the list's first page)."""
        if not self.is_list:
            return {"provider": self.provider_id}
        return {k: v for k, v in (("q", self.q), ("page", self.page)) if v and v != 1}

    @property
    def kind(self) -> str:
        return "provider" if not self.is_list else "search" if self.q else "all"

    @property
    def params(self) -> dict:
        """The values of the bind parameters of the statements built by `where` and `limit`."""
        if not self.is_list:
            return {"provider": self.provider_id}
        pattern = self.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return {"pattern": f"%{pattern}%", "limit": PAGE_SIZE, "offset": (self.page - 1) * PAGE_SIZE}

    def where(self) -> list:
        return _where(self.kind)

    def limit(self, statement):
        if not self.is_list:
            return statement
        return statement.order_by(Provider.name).limit(bindparam("limit")).offset(bindparam("offset"))


def _where(kind: str) -> list:
    if kind == "provider":
        return [Provider.id == bindparam("provider")]
    if kind == "search":
        return [Provider.name.ilike(bindparam("pattern"), escape="\\")]
    return []


@dataclass
class ProviderPage:
    """One page of the list: its providers, their workspace counts, and the poll fingerprint."""

    scope: Scope
    providers: list[Provider]
    counts: dict[int, int]
    total: int
    pages: int
    fingerprint: str = field(default="")

    @property
    def first(self) -> int:
        return (self.scope.page - 1) * PAGE_SIZE + 1 if self.providers else 0

    @property
    def last(self) -> int:
        return self.first + len(self.providers) - 1 if self.providers else 0

    def page_numbers(self, around: int = 2) -> list[int | None]:
        """1 … 4 5 [6] 7 8 … 20: the first, the last and a window; None marks a gap."""
        shown = {1, self.pages, *range(self.scope.page - around, self.scope.page + around + 1)}
        numbers, previous = [], 0
        for n in sorted(n for n in shown if 1 <= n <= self.pages):
            if n > previous + 1:
                numbers.append(None)
            numbers.append(n)
            previous = n
        return numbers


def workspace_count():
    """The number of workspaces of the provider of the enclosing row (a correlated subquery)."""
    return (select(func.count()).select_from(Workspace)
            .where(Workspace.provider_id == Provider.id).scalar_subquery())


class ProviderRow:
    """A provider as a row of the list shows it, read without the ORM: its columns as
    attributes, the names of its organizations, and its status label."""

    def __init__(self, values, organizations: list):
        self.__dict__.update(values)
        self.organizations = organizations

    @property
    def status_label(self) -> str:
        return Status(self.status).label


class OrganizationName(NamedTuple):
    name: str


@functools.cache
def _page_statement(kind: str):
    """The page's rows with their workspace counts and the total (built once per kind, so that
    SQLAlchemy's statement cache key is computed once)."""
    where = _where(kind)
    shown = Scope(q="x" if kind == "search" else "").limit(
        select(Provider.id, *ROW_COLUMNS).where(*where)).subquery("shown")
    workspaces = (select(func.count()).select_from(Workspace)
                  .where(Workspace.provider_id == shown.c.id).scalar_subquery())
    return select(shown, workspaces.label("workspaces"), _total(kind).label("total")).order_by(shown.c.name)


@functools.cache
def _organizations_statement():
    return (select(provider_organizations.c.provider_id, Organization.name)
            .join(Organization, Organization.id == provider_organizations.c.organization_id)
            .where(provider_organizations.c.provider_id.in_(bindparam("ids", expanding=True)))
            .order_by(Organization.name))


def _total(kind: str):
    return select(func.count()).select_from(Provider).where(*_where(kind)).scalar_subquery()


def provider_page(scope: Scope) -> ProviderPage:
    """A page of the list in 2 queries: the rows with their workspace and total counts, then
    their organizations' names. A page past the end shows the last one."""
    connection = db.session.connection()  # plain rows: the ORM has no objects to load
    rows = connection.execute(_page_statement(scope.kind), scope.params).all()
    if not rows and scope.page > 1:
        total = connection.scalar(select(_total(scope.kind)), scope.params)
        if total:
            return provider_page(Scope(q=scope.q, page=math.ceil(total / PAGE_SIZE)))
    organizations = {row.id: [] for row in rows}
    if rows:
        for provider_id, name in connection.execute(_organizations_statement(), {"ids": list(organizations)}):
            organizations[provider_id].append(OrganizationName(name))
    providers = [ProviderRow(row._mapping, organizations[row.id]) for row in rows]
    total = rows[0].total if rows else 0
    page = ProviderPage(scope, providers, {row.id: row.workspaces for row in rows},
                        total, max(1, math.ceil(total / PAGE_SIZE)))
    page.fingerprint = fingerprint(total, [(p, page.counts[p.id]) for p in providers])
    return page


def providers_by_id(ids) -> list[Provider]:
    """The providers to re-render after a poll (2 queries)."""
    return list(db.session.scalars(
        select(Provider).where(Provider.id.in_(ids))
        .options(load_only(*ROW_COLUMNS), selectinload(Provider.organizations).load_only(Organization.name))
        .order_by(Provider.name)
    ))


def workspace_count_of(provider: Provider) -> int:
    """The number of workspaces on one provider (1 query)."""
    return db.session.scalar(select(func.count()).select_from(Workspace).filter_by(provider_id=provider.id))


def workspaces_of(provider: Provider, limit: int = 20) -> list[Workspace]:
    return list(
        db.session.scalars(
            db.select(Workspace)
            .filter_by(provider_id=provider.id)
            .options(selectinload(Workspace.owner))
            .order_by(Workspace.name)
            .limit(limit)
        )
    )


# The poll fingerprint ------------------------------------------------------------------
#
# "<total>-<digest>": the number of providers in the scope (the whole search for the list, so
# that a provider added or removed on another page still changes it) and a sum, over the rows
# shown, of a non-linear hash of (id, display_version, workspace count, creation second).
# Being non-linear, the sum changes when two rows trade versions (which a sum of ids and a sum
# of versions would not notice); the creation second tells a new provider from a deleted one
# that had the same id (SQLite reuses the highest id). The same arithmetic runs in SQL for the
# poll, which thus costs one aggregate query, and in Python for the page, over the very rows
# it rendered.

_MODULUS = 2_147_483_647  # 2**31 - 1: a square stays below 2**62, within a signed 64-bit integer


class epoch_seconds(FunctionElement):
    """Whole seconds since 1970 of a UTC datetime column, on SQLite and PostgreSQL."""

    type = BigInteger()
    inherit_cache = True


@compiles(epoch_seconds)
def _epoch_seconds(element, compiler, **kw):
    return f"CAST(FLOOR(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)})) AS BIGINT)"


@compiles(epoch_seconds, "sqlite")
def _epoch_seconds_sqlite(element, compiler, **kw):
    return f"CAST(STRFTIME('%s', {compiler.process(element.clauses, **kw)}) AS INTEGER)"


def _row_hash(ident, version, workspaces, created):
    """Works alike on Python ints and on SQL expressions."""
    mixed = (ident * 1_000_003 + version * 7_919 + workspaces * 104_729 + created) % _MODULUS
    return mixed * mixed % _MODULUS


def _fingerprint(total: int, digest: int) -> str:
    return f"{total}-{int(digest or 0):x}"


def _created(provider: Provider) -> int:
    return int(provider.created_at.timestamp()) if provider.created_at else 0


def fingerprint(total: int, rows) -> str:
    """The fingerprint of (provider, workspace count) pairs shown out of `total`."""
    return _fingerprint(total, sum(
        _row_hash(p.id, p.display_version or 0, count, _created(p)) for p, count in rows))


@functools.cache
def _fingerprint_statement(kind: str):
    shown = Scope(q="x" if kind == "search" else "", provider_id=0 if kind == "provider" else None).limit(select(
        cast(Provider.id, BigInteger).label("id"),
        cast(func.coalesce(Provider.display_version, 0), BigInteger).label("version"),
        cast(workspace_count(), BigInteger).label("workspaces"),
        cast(func.coalesce(epoch_seconds(Provider.created_at), 0), BigInteger).label("created"),
    ).where(*_where(kind))).subquery()
    digest = func.coalesce(func.sum(_row_hash(shown.c.id, shown.c.version, shown.c.workspaces,
                                              shown.c.created)), 0)
    return select(_total(kind), digest).select_from(shown)


def current_fingerprint(scope: Scope) -> str:
    """The fingerprint of the scope as it is now, in one aggregate query (on the session's
    connection, without the ORM's handling of results: there are no objects to load)."""
    count, value = db.session.connection().execute(_fingerprint_statement(scope.kind), scope.params).one()
    return _fingerprint(count, value)


def commits_seen() -> int:
    """A number that changes whenever a transaction commits in this process."""
    return _fingerprints().generation


def status_fingerprint(scope: Scope) -> str:
    """The fingerprint of the scope as it is now: as read at most FINGERPRINT_SECONDS ago and
    before any commit since in this process, else in one aggregate query."""
    cache = _fingerprints()
    key = (scope.kind, scope.q, scope.page, scope.provider_id)
    generation, now = cache.generation, time.monotonic()
    known = cache.items.get(key)
    if known is not None and known[0] == generation and known[1] > now:
        return known[2]
    fingerprint = current_fingerprint(scope)
    if len(cache.items) >= FINGERPRINT_CACHE_SIZE:
        cache.items.clear()
    cache.items[key] = (generation, now + FINGERPRINT_SECONDS, fingerprint)
    return fingerprint


class _FingerprintCache:
    """The fingerprints read lately, per scope. Other processes (web workers, the scheduler)
    write too, so an entry lives FINGERPRINT_SECONDS at most; a commit in this process ends
    every entry at once."""

    def __init__(self, engine):
        self.items: dict = {}
        self._commits = itertools.count(1)
        self.generation = 0
        event.listen(engine, "commit", self._committed)

    def _committed(self, connection) -> None:
        self.generation = next(self._commits)


def _fingerprints() -> _FingerprintCache:
    extensions = current_app.extensions
    cache = extensions.get("provider_fingerprints")
    if cache is None:
        cache = extensions["provider_fingerprints"] = _FingerprintCache(db.engine)
    return cache


@dataclass
class Shown:
    id: int
    version: int
    workspaces: int


@functools.cache
def _snapshot_statement(kind: str):
    scope = Scope(q="x" if kind == "search" else "", provider_id=0 if kind == "provider" else None)
    return scope.limit(select(Provider.id, Provider.display_version, Provider.created_at, workspace_count(),
                              _total(kind)).where(*_where(kind)))


def status_snapshot(scope: Scope) -> tuple[int, list[Shown], str]:
    """The scope's total, its rows' versions and workspace counts, and their fingerprint,
    read in one query so that the fingerprint matches the versions exactly."""
    rows = db.session.execute(_snapshot_statement(scope.kind), scope.params).all()
    total = rows[0][4] if rows else 0
    shown = [Shown(r[0], r[1] or 0, r[3]) for r in rows]
    digest = sum(_row_hash(r[0], r[1] or 0, r[3], int(r[2].timestamp()) if r[2] else 0) for r in rows)
    return total, shown, _fingerprint(total, digest)
