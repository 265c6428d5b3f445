"""User changes, the same for the Users page and the API: each with its audit entry; the site
always keeps an active Site admin, and an admin never locks themselves out."""
from .. import audit, sessions
from ..database import duplicate_at
from ..extensions import db
from ..models import Organization, Role, User
from . import admins


def values(user: User) -> dict:
    """The edit form's starting values (organizations as ids: the checkboxes compare ids)."""
    return {"email": user.email, "username": user.username, "role": user.role, "active": user.active,
            "organizations": [o.id for o in user.organizations]}


def create(form, *, actor=None) -> User | None:
    """A new user from the checked form; None when a concurrent create took the email or
    username (the message is at that field)."""
    with duplicate_at(form, "email", "username") as refused:
        user = User()
        changes = _apply(user, form)
        db.session.add(user)
        db.session.flush()
        audit.record("user.create", user, changes, **_by(actor))
        db.session.commit()
    return None if refused else user


def update(user: User, form, by: User) -> bool:
    """Apply the checked form to `user` as `by`; False with the reason at a field when it would
    lock `by` out, leave the site without an active Site admin, or take a name in use."""
    if _self_lockout(user, form, by):
        return False
    with duplicate_at(form, "email", "username") as refused:
        admins.lock()
        changes = _apply(user, form)
        if admins.none_left():
            db.session.rollback()
            (form.role if changes.get("role") else form.active).errors.append(admins.MESSAGE)
            return False
        if changes:  # saving the form unchanged is not a change
            audit.record("user.update", user, changes, actor=by)
        db.session.commit()
        if user.id == by.id:  # a new password ends one's other sessions, not this one
            sessions.keep_current(user)
    return not refused


def _self_lockout(user: User, form, by: User) -> bool:
    """An admin may not demote or deactivate themselves; it could leave the site without one."""
    if user.id != by.id:
        return False
    if form.role.data != Role.ADMIN.value:
        form.role.errors.append("You cannot remove your own Site admin role.")
    if not form.active.data:
        form.active.errors.append("You cannot deactivate yourself.")
    return bool(form.role.errors or form.active.errors)


def _apply(user: User, form) -> dict:
    before = {"email": user.email, "username": user.username, "role": user.role, "active": user.active,
              "organizations": sorted(o.name for o in user.organizations)}
    user.email, user.username = form.email.data, form.username.data
    user.role, user.active = form.role.data, form.active.data
    user.organizations = list(db.session.scalars(
        db.select(Organization).filter(Organization.id.in_(form.organizations.data or []))))
    after = {"email": user.email, "username": user.username, "role": user.role, "active": user.active,
             "organizations": sorted(o.name for o in user.organizations)}
    changes = {k: {"from": before[k], "to": after[k]} for k in after if before[k] != after[k]}
    if form.password.data:
        user.set_password(form.password.data)
        changes["password"] = "(changed)"
    return changes


def _by(actor) -> dict:
    return {"actor": actor} if actor is not None else {}
