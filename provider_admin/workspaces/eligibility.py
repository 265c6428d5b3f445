"""Which providers an organization may create workspaces on, and why the others not."""
from sqlalchemy.orm import selectinload

from ..extensions import db
from ..models import Organization, Provider, Status


def reason_not_eligible(provider: Provider, organization: Organization | None) -> str | None:
    """None when a new workspace may go there; else the reason, in the user's words."""
    if organization is None or organization not in provider.organizations:
        return "not available to this organization"
    if provider.cordoned:
        return f"cordoned: {provider.cordon_reason}" if provider.cordon_reason else "cordoned"
    if provider.status != Status.READY.value:
        return f"not ready ({provider.status_label})"
    return None


def providers_for(organization: Organization | None) -> list[tuple[Provider, str | None]]:
    providers = db.session.scalars(
        db.select(Provider).options(selectinload(Provider.organizations)).order_by(Provider.name)
    )
    return [(p, reason_not_eligible(p, organization)) for p in providers]
