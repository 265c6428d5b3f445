"""The badge poll's fingerprint of what a page shows: in SQL for the poll, in Python for a page.

"<total>-<digest>": the number of providers in the scope (the whole search for the list, so
that a provider added or removed on another page still changes it) and a sum, over the rows
shown, of a non-linear hash of (id, display_version, workspace count, creation second).

display_version is the database's: triggers bump it whenever anything a row shows changes,
whoever writes it (migrations/versions/0010_display_version_triggers.py). Workspace counts are
read as they are. Being non-linear, the sum changes when two rows trade versions (which a sum
of ids and a sum of versions would not notice); the creation second tells a new provider from
a deleted one that had the same id (SQLite reuses the highest id). The same arithmetic runs in
SQL for the poll, which thus costs one aggregate query, and in Python for the page, over the
very rows it rendered.
"""
from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import BigInteger, cast, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from ..caches import caches
from ..extensions import db
from ..models import Provider, Workspace
from .scope import KINDS, Scope, paged, total, where

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


def _format(count: int, digest: int | None) -> str:
    return f"{count}-{int(digest or 0):x}"


def _seconds(created) -> int:
    return int(created.timestamp()) if created else 0


def fingerprint_of(count: int, rows) -> str:
    """The fingerprint of (provider, workspace count) pairs shown out of `count`."""
    return _format(count, sum(_row_hash(p.id, p.display_version or 0, workspaces, _seconds(p.created_at))
                              for p, workspaces in rows))


def workspace_count():
    """The number of workspaces of the provider of the enclosing row (a correlated subquery)."""
    return (select(func.count()).select_from(Workspace)
            .where(Workspace.provider_id == Provider.id).scalar_subquery())


def _aggregate(kind: str):
    shown = paged(kind, select(
        cast(Provider.id, BigInteger).label("id"),
        cast(func.coalesce(Provider.display_version, 0), BigInteger).label("version"),
        cast(workspace_count(), BigInteger).label("workspaces"),
        cast(func.coalesce(epoch_seconds(Provider.created_at), 0), BigInteger).label("created"),
    ).where(*where(kind))).subquery()
    digest = func.coalesce(func.sum(_row_hash(shown.c.id, shown.c.version, shown.c.workspaces,
                                              shown.c.created)), 0)
    return select(total(kind), digest).select_from(shown)


def _rows(kind: str):
    return paged(kind, select(Provider.id, func.coalesce(Provider.display_version, 0).label("version"),
                              Provider.created_at, workspace_count().label("workspaces"),
                              total(kind).label("total")).where(*where(kind)))


_AGGREGATE = {kind: _aggregate(kind) for kind in KINDS}
_ROWS = {kind: _rows(kind) for kind in KINDS}


def current_fingerprint(scope: Scope) -> str:
    """The fingerprint of the scope as it is now, in one aggregate query (on the session's
    connection, without the ORM's handling of results: there are no objects to load)."""
    count, digest = db.session.connection().execute(_AGGREGATE[scope.kind], scope.params).one()
    return _format(count, digest)


def status_fingerprint(scope: Scope) -> str:
    """The fingerprint of the scope as read at most FINGERPRINT_SECONDS ago and before any
    commit since in this process (caches.py). Other processes (web workers, the scheduler)
    write too, so what they change reaches a page at most that much later."""
    return caches().fingerprints.fetch(scope, lambda: current_fingerprint(scope))


class Shown(NamedTuple):
    """A row of the scope as the poll compares it with what the page shows."""

    id: int
    version: int
    workspaces: int


class Snapshot(NamedTuple):
    total: int
    shown: list[Shown]
    fingerprint: str


def status_snapshot(scope: Scope) -> Snapshot:
    """The scope's total, its rows' versions and workspace counts, and their fingerprint,
    read in one query so that the fingerprint matches the versions exactly."""
    rows = db.session.connection().execute(_ROWS[scope.kind], scope.params).all()
    count = rows[0].total if rows else 0
    digest = sum(_row_hash(r.id, r.version, r.workspaces, _seconds(r.created_at)) for r in rows)
    return Snapshot(count, [Shown(r.id, r.version, r.workspaces) for r in rows], _format(count, digest))
