"""The statements that read providers for their pages: a page of the list in two queries, the
rows a poll re-renders, a provider's workspaces."""
from __future__ import annotations

import math
from typing import NamedTuple

from flask import abort
from flask_login import current_user
from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import load_only, selectinload

from ..conflicts import Gone
from ..extensions import db
from ..models import AuditEvent, Organization, Provider, Status, Workspace, provider_organizations
from .fingerprint import fingerprint_of
from .scope import KINDS, PAGE_SIZE, ProviderPage, Scope, paged, total, where

# The columns a row of the list shows (and the fingerprint reads); the rest stay unloaded.
ROW_COLUMNS = (Provider.name, Provider.namespace, Provider.cluster_address, Provider.status,
               Provider.status_message, Provider.status_warnings, Provider.cordoned,
               Provider.cordon_reason, Provider.kube_version, Provider.last_checked_at,
               Provider.display_version, Provider.created_at)


def get_provider_or_404(provider_id: int) -> Provider:
    """The provider, else 404: saying that it was deleted when the audit log says so (to the
    managers and admins who may read the log)."""
    provider = db.session.get(Provider, provider_id)
    if provider is None:
        if getattr(current_user, "can_manage", False) and db.session.scalar(select(AuditEvent.id).filter_by(
                target_type="provider", target_id=provider_id, action="provider.delete").limit(1)):
            raise Gone("provider")
        abort(404)
    return provider


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


def _page(kind: str):
    """The page's rows with their workspace counts and the scope's total."""
    shown = paged(kind, select(Provider.id, *ROW_COLUMNS).where(*where(kind))).subquery("shown")
    workspaces = (select(func.count()).select_from(Workspace)
                  .where(Workspace.provider_id == shown.c.id).scalar_subquery())
    return select(shown, workspaces.label("workspaces"), total(kind).label("total")).order_by(shown.c.name)


_PAGE = {kind: _page(kind) for kind in KINDS if kind != "provider"}
_TOTAL = {kind: select(total(kind)) for kind in KINDS}
_ORGANIZATIONS = (select(provider_organizations.c.provider_id, Organization.name)
                  .join(Organization, Organization.id == provider_organizations.c.organization_id)
                  .where(provider_organizations.c.provider_id.in_(bindparam("ids", expanding=True)))
                  .order_by(Organization.name))


def provider_page(scope: Scope) -> ProviderPage:
    """A page of the list in 2 queries: the rows with their workspace and total counts, then
    their organizations' names. A page past the end shows the last one."""
    connection = db.session.connection()  # plain rows: the ORM has no objects to load
    rows = connection.execute(_PAGE[scope.kind], scope.params).all()
    if not rows and scope.page > 1:
        count = connection.scalar(_TOTAL[scope.kind], scope.params)
        if count:
            return provider_page(scope.on_page(math.ceil(count / PAGE_SIZE)))
    organizations = {row.id: [] for row in rows}
    if rows:
        for provider_id, name in connection.execute(_ORGANIZATIONS, {"ids": list(organizations)}):
            organizations[provider_id].append(OrganizationName(name))
    providers = [ProviderRow(row._mapping, organizations[row.id]) for row in rows]
    counts = {row.id: row.workspaces for row in rows}
    count = rows[0].total if rows else 0
    return ProviderPage(scope, providers, counts, count, max(1, math.ceil(count / PAGE_SIZE)),
                        fingerprint_of(count, [(p, counts[p.id]) for p in providers]))


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
