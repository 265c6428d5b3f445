from flask import abort, flash, url_for
from sqlalchemy import func
from sqlalchemy.orm import selectinload

from ..extensions import db
from ..forms import ConfirmForm
from ..htmx import done, render
from ..models import Organization, User, Workspace, organization_members, provider_organizations
from ..users.queries import get_user_or_404
from . import bp, service
from .forms import AddMemberForm, OrganizationForm


def get_organization_or_404(organization_id: int, *options) -> Organization:
    organization = db.session.get(Organization, organization_id, options=options)
    if organization is None:
        abort(404)
    return organization


def _counts(column, table) -> dict[int, int]:
    return dict(db.session.execute(db.select(column, func.count()).select_from(table).group_by(column)).all())


@bp.route("/", methods=["GET", "POST"])
def index():
    """List organizations and create new ones."""
    form = OrganizationForm()
    if form.validate_on_submit() and (organization := service.create(form)) is not None:
        flash(f"Organization {organization.name} created.", "success")
        return done(url_for(".index"))
    organizations = db.session.scalars(db.select(Organization).order_by(Organization.name)).all()
    return render(
        "organizations/index.html", "organizations/_list.html", 422 if form.errors else 200,
        form=form, organizations=organizations,
        members=_counts(organization_members.c.organization_id, organization_members),
        providers=_counts(provider_organizations.c.organization_id, provider_organizations),
        workspaces=_counts(Workspace.organization_id, Workspace),
    )


@bp.route("/<int:organization_id>", methods=["GET", "POST"])
def update(organization_id: int):
    """Rename an organization and manage its members."""
    organization = get_organization_or_404(organization_id, selectinload(Organization.members))
    form = OrganizationForm(organization=organization, obj=organization)
    if form.validate_on_submit() and form.name.data != organization.name and service.rename(organization, form):
        flash("Organization renamed.", "success")
        return done(url_for(".update", organization_id=organization.id))
    return _page(organization, form, AddMemberForm(formdata=None), 422 if form.errors else 200)


@bp.post("/<int:organization_id>/members")
def add_member(organization_id: int):
    """Add a user to the organization."""
    organization = get_organization_or_404(organization_id)
    add = AddMemberForm()
    add.user_id.choices = _non_member_choices(organization)
    if add.validate_on_submit():
        user = get_user_or_404(add.user_id.data)
        service.add_member(organization, user)
        flash(f"{user.username} added to {organization.name}.", "success")
        return done(url_for(".update", organization_id=organization.id))
    return _page(organization, OrganizationForm(formdata=None, obj=organization), add, 422)


@bp.post("/<int:organization_id>/members/<int:user_id>/remove")
def remove_member(organization_id: int, user_id: int):
    """Remove a user from the organization (their workspaces stay until deleted)."""
    organization = get_organization_or_404(organization_id)
    user = get_user_or_404(user_id)
    if ConfirmForm().validate_on_submit() and service.remove_member(organization, user):
        flash(f"{user.username} removed from {organization.name}.", "success")
    return done(url_for(".update", organization_id=organization.id))


def _non_member_choices(organization: Organization) -> list[tuple[int, str]]:
    member_ids = {m.id for m in organization.members}
    users = db.session.scalars(db.select(User).filter_by(active=True).order_by(User.username))
    return [(u.id, f"{u.username} ({u.email})") for u in users if u.id not in member_ids]


def _page(organization, form, add, status):
    add.user_id.choices = _non_member_choices(organization)
    return render("organizations/edit.html", "organizations/_edit.html", status,
                  organization=organization, form=form, add=add, confirm=ConfirmForm())
