"""Read-side queries for the providers pages, in a constant number of SQL statements."""
from flask import abort
from sqlalchemy import func
from sqlalchemy.orm import selectinload

from ..extensions import db
from ..models import Provider, Workspace


def get_provider_or_404(provider_id: int) -> Provider:
    provider = db.session.get(Provider, provider_id)
    if provider is None:
        abort(404)
    return provider


def list_providers() -> list[Provider]:
    """All providers with their organizations (2 queries) ..."""
    return list(
        db.session.scalars(
            db.select(Provider).options(selectinload(Provider.organizations)).order_by(Provider.name)
        )
    )


def workspace_counts() -> dict[int, int]:
    """... and their workspace counts (1 query)."""
    rows = db.session.execute(
        db.select(Workspace.provider_id, func.count()).group_by(Workspace.provider_id)
    )
    return dict(rows.all())


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


def fingerprint(rows) -> str:
    """Changes whenever a provider is added, removed or re-rendered (display_version)."""
    rows = [(r.id, r.display_version) for r in rows]
    return f"{len(rows)}-{sum(i for i, _ in rows)}-{sum(v for _, v in rows)}"
