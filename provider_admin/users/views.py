from flask import flash, url_for
from flask_login import current_user
from sqlalchemy.orm import selectinload

from .. import audit
from .. import sessions
from ..database import duplicate_at
from ..extensions import db
from ..htmx import done, render
from ..models import Organization, Role, User
from . import admins, bp
from .forms import UserForm
from .queries import get_user_or_404


@bp.get("/")
def index():
    """All users with their role and organizations."""
    users = db.session.scalars(
        db.select(User).options(selectinload(User.organizations)).order_by(User.username)
    ).all()
    return render("users/index.html", "users/_list.html", users=users)


@bp.route("/new", methods=["GET", "POST"])
def create():
    """Create a user with a role and organizations."""
    form = _form(UserForm())
    if form.validate_on_submit():
        with duplicate_at(form, "email", "username") as refused:
            user = User()
            changes = _apply(user, form)
            db.session.add(user)
            db.session.flush()
            audit.record("user.create", user, changes)
            db.session.commit()
        if not refused:
            flash(f"User {user.username} created.", "success")
            return done(url_for(".index"))
    return render("users/form.html", "users/_form.html", 422 if form.errors else 200, form=form, user=None)


@bp.route("/<int:user_id>/edit", methods=["GET", "POST"])
def update(user_id: int):
    """Change a user's role, organizations, status or password."""
    user = get_user_or_404(user_id)
    form = _form(UserForm(user=user, data=_values(user)))
    if form.validate_on_submit() and not _refuse_self_lockout(user, form):
        with duplicate_at(form, "email", "username") as refused:
            admins.lock()
            changes = _apply(user, form)
            if admins.none_left():
                db.session.rollback()
                (form.role if changes.get("role") else form.active).errors.append(admins.MESSAGE)
            else:
                if changes:  # saving the form unchanged is not a change
                    audit.record("user.update", user, changes)
                db.session.commit()
                if user.id == current_user.id:  # a new password ends one's other sessions, not this one
                    sessions.keep_current(user)
                flash(f"User {user.username} updated.", "success")
                return done(url_for(".index"))
    return render("users/form.html", "users/_form.html", 422 if form.errors else 200, form=form, user=user)


def _form(form: UserForm) -> UserForm:
    form.organizations.choices = [
        (o.id, o.name) for o in db.session.scalars(db.select(Organization).order_by(Organization.name))
    ]
    return form


def _values(user: User) -> dict:
    """The edit form's starting values (organizations as ids: the checkboxes compare ids)."""
    return {"email": user.email, "username": user.username, "role": user.role, "active": user.active,
            "organizations": [o.id for o in user.organizations]}


def _refuse_self_lockout(user: User, form: UserForm) -> bool:
    """An admin may not demote or deactivate themselves; it could leave the site without one."""
    if user.id != current_user.id:
        return False
    if form.role.data != Role.ADMIN.value:
        form.role.errors.append("You cannot remove your own Site admin role.")
    if not form.active.data:
        form.active.errors.append("You cannot deactivate yourself.")
    return bool(form.role.errors or form.active.errors)


def _apply(user: User, form: UserForm) -> dict:
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
