from flask import flash, url_for
from flask_login import current_user
from sqlalchemy.orm import selectinload

from ..extensions import db
from ..htmx import done, render
from ..models import Organization, User
from . import bp, service
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
    if form.validate_on_submit() and (user := service.create(form)) is not None:
        flash(f"User {user.username} created.", "success")
        return done(url_for(".index"))
    return render("users/form.html", "users/_form.html", 422 if form.errors else 200, form=form, user=None)


@bp.route("/<int:user_id>/edit", methods=["GET", "POST"])
def update(user_id: int):
    """Change a user's role, organizations, status or password."""
    user = get_user_or_404(user_id)
    form = _form(UserForm(user=user, data=service.values(user)))
    if form.validate_on_submit() and service.update(user, form, current_user):
        flash(f"User {user.username} updated.", "success")
        return done(url_for(".index"))
    return render("users/form.html", "users/_form.html", 422 if form.errors else 200, form=form, user=user)


def _form(form: UserForm) -> UserForm:
    form.organizations.choices = [
        (o.id, o.name) for o in db.session.scalars(db.select(Organization).order_by(Organization.name))
    ]
    return form
