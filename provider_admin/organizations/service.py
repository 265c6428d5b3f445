"""Organization changes, the same for the pages and the API: each with its audit entry."""
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from .. import audit
from ..database import duplicate_at
from ..extensions import db
from ..models import Organization, User


def create(form, *, actor=None) -> Organization | None:
    """A new organization named by the checked form; None when a concurrent create took the
    name (the message is at the field)."""
    with duplicate_at(form, "name") as refused:
        organization = Organization(name=form.name.data)
        db.session.add(organization)
        db.session.flush()
        audit.record("organization.create", organization, {"name": organization.name}, **_by(actor))
        db.session.commit()
    return None if refused else organization


def rename(organization: Organization, form, *, actor=None) -> bool:
    """Rename to the checked form's name; False when a concurrent change took it."""
    if form.name.data == organization.name:
        return True
    with duplicate_at(form, "name") as refused:
        audit.record("organization.update", organization,
                     {"name": {"from": organization.name, "to": form.name.data}}, **_by(actor))
        organization.name = form.name.data
        db.session.commit()
    return not refused


def add_member(organization: Organization, user: User, *, actor=None) -> bool:
    """False when the user is a member already."""
    if user in organization.members:
        return False
    organization.members.append(user)
    audit.record("organization.add_member", organization, {"member": user.email}, **_by(actor))
    try:
        db.session.commit()
    except IntegrityError:  # a concurrent request added them: a member, as asked, once
        db.session.rollback()
        return False
    return True


def remove_member(organization: Organization, user: User, *, actor=None) -> bool:
    """False when the user was not a member. Their workspaces stay until deleted."""
    if user not in organization.members:
        return False
    organization.members.remove(user)
    audit.record("organization.remove_member", organization, {"member": user.email}, **_by(actor))
    try:
        db.session.commit()
    except StaleDataError:  # a concurrent request removed them first
        db.session.rollback()
        return False
    return True


def _by(actor) -> dict:
    return {"actor": actor} if actor is not None else {}
