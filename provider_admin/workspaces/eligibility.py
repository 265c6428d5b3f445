"""Which providers an organization may create workspaces on, and why the others not."""
from sqlalchemy.orm import selectinload

from ..extensions import db
from ..models import Organization, Provider, Status, User


def reason_not_eligible(provider: Provider, organization: Organization | None) -> str | None:
    """None when a new workspace may go there; else the reason, in the user's words."""
    if organization is None or organization not in provider.organizations:
        return "not available to this organization"
    if provider.cordoned:
        return f"cordoned: {provider.cordon_reason}" if provider.cordon_reason else "cordoned"
    if provider.status != Status.READY.value:
        return f"not ready ({provider.status_label})"
    return None


def providers_for(organization: Organization | None, user: User) -> list[tuple[Provider, str | None]]:
    """The providers the form offers, each with its reason when it cannot be chosen. A member
    is offered only those allowlisted for the organization: the others are not theirs to see."""
    query = db.select(Provider).options(selectinload(Provider.organizations)).order_by(Provider.name)
    if not user.can_manage:
        if organization is None:
            return []
        query = query.filter(Provider.organizations.any(Organization.id == organization.id))
    return [(p, reason_not_eligible(p, organization)) for p in db.session.scalars(query)]
