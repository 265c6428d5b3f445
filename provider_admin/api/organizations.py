"""/api/v1/organizations and /api/v1/audit: what the Organizations and Audit log pages do."""
import hashlib

from flask import Response, abort, json, url_for
from flask_openapi3 import Tag
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from ..conflicts import hold
from ..extensions import db
from ..models import AuditEvent, Organization, User, Workspace, provider_organizations
from ..organizations import service
from ..organizations.forms import OrganizationForm
from ..organizations.views import get_organization_or_404
from ..users.queries import get_user_or_404
from ..problems import problem
from .areas import MANAGERS, area, precondition
from .provider_schemas import Precondition
from .schemas import Id, Line, Parameters

TAG = Tag(name="Organizations", description="Organizations and their members (site managers and admins).")
AUDIT = Tag(name="Audit log", description="Who changed what, newest first (site managers and admins).")
bp = area("organizations", TAG, roles=MANAGERS)


class Member(BaseModel):
    id: int
    email: str
    username: str


class OrganizationOut(BaseModel):
    id: int
    name: str
    members: list[Member]
    providers: int = Field(description="How many providers allow it.")
    workspaces: int


class OrganizationList(BaseModel):
    items: list[OrganizationOut]


class OrganizationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Line = Field(min_length=1, max_length=64)


class MemberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: int = Id


class OrganizationPath(BaseModel):
    organization_id: int = Id


class MemberPath(BaseModel):
    organization_id: int = Id
    user_id: int = Id


class Event(BaseModel):
    id: int
    at: str
    actor: str
    action: str
    target_type: str
    target_id: int | None
    target_name: str | None
    changes: dict | None


class EventPage(BaseModel):
    items: list[Event]
    next_cursor: int | None = Field(description="Pass as `cursor` for older events; null on the last page.")


class EventFilter(Parameters):
    model_config = ConfigDict(extra="forbid")
    type: Line | None = Field(None, max_length=32, description="e.g. `provider`, `organization`, `sign_in`.")
    limit: int = Field(50, ge=1, le=200)
    cursor: int | None = Field(None, ge=0, le=2**31 - 1)


def _count(column, table, organization_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(table).filter(column == organization_id))


def _body(organization: Organization) -> dict:
    return OrganizationOut(
        id=organization.id, name=organization.name,
        members=[Member(id=u.id, email=u.email, username=u.username) for u in organization.members],
        providers=_count(provider_organizations.c.organization_id, provider_organizations, organization.id),
        workspaces=_count(Workspace.organization_id, Workspace, organization.id)).model_dump()


def _answer(organization: Organization, status: int = 200, **headers) -> Response:
    db.session.refresh(organization)
    response = Response(json.dumps(_body(organization)), status, mimetype="application/json", headers=headers)
    response.headers["ETag"] = etag(organization)
    return response


def etag(organization: Organization) -> str:
    """From what can change: the name and the members."""
    state = json.dumps([organization.name, sorted(u.id for u in organization.members)])
    return '"' + hashlib.sha256(state.encode()).hexdigest()[:20] + '"'


def _form(organization: Organization | None, name: str) -> OrganizationForm | Response:
    form = OrganizationForm(formdata=None, data={"name": name}, organization=organization, meta={"csrf": False})
    if form.validate():
        return form
    return problem(422, "Invalid organization", "Some values were refused; see errors.",
                   errors=[{"pointer": "/name", "detail": str(message)} for message in form.name.errors])


@bp.get("/organizations", responses={200: OrganizationList})
def list_organizations():
    """List organizations

    By name, with their members and how many providers and workspaces they have.
    """
    organizations = db.session.scalars(select(Organization).options(selectinload(Organization.members))
                                       .order_by(Organization.name)).all()
    return {"items": [_body(o) for o in organizations]}


@bp.get("/organizations/<int:organization_id>", responses={200: OrganizationOut})
def get_organization(path: OrganizationPath):
    """Get an organization"""
    return _answer(get_organization_or_404(path.organization_id, selectinload(Organization.members)))


@bp.post("/organizations", responses={201: OrganizationOut})
def create_organization(body: OrganizationIn):
    """Create an organization

    Names are unique whatever their case.
    """
    form = _form(None, body.name)
    if isinstance(form, Response):
        return form
    organization = service.create(form)
    if organization is None:
        return problem(422, "Invalid organization", errors=[{"pointer": "/name", "detail": form.name.errors[0]}])
    return _answer(organization, 201, Location=url_for("api.organizations.get_organization",
                                                       organization_id=organization.id))


@bp.patch("/organizations/<int:organization_id>", responses={200: OrganizationOut, 412: None, 428: None})
def rename_organization(path: OrganizationPath, body: OrganizationIn, header: Precondition):
    """Rename an organization

    Needs `If-Match` with the ETag of your last read.
    """
    organization = hold(Organization, path.organization_id)  # a concurrent rename waits, then finds it changed
    if organization is None:
        abort(404)
    if (refused := _precondition(organization)) is not None:
        return refused
    form = _form(organization, body.name)
    if isinstance(form, Response):
        return form
    if not service.rename(organization, form):
        return problem(422, "Invalid organization", errors=[{"pointer": "/name", "detail": form.name.errors[0]}])
    return _answer(organization)


def _precondition(organization: Organization) -> Response | None:
    return precondition(etag(organization), what="the organization")


@bp.post("/organizations/<int:organization_id>/members", responses={200: OrganizationOut})
def add_member(path: OrganizationPath, body: MemberIn):
    """Add a member

    An active user; adding a member twice changes nothing.
    """
    organization = get_organization_or_404(path.organization_id, selectinload(Organization.members))
    user = db.session.get(User, body.user_id)
    if user is None or not user.active:
        return problem(422, "Invalid member", errors=[{"pointer": "/user_id", "detail": "No active user has this id."}])
    service.add_member(organization, user)
    return _answer(organization)


@bp.delete("/organizations/<int:organization_id>/members/<int:user_id>", responses={200: OrganizationOut})
def remove_member(path: MemberPath):
    """Remove a member

    Their workspaces in the organization stay until deleted.
    """
    organization = get_organization_or_404(path.organization_id, selectinload(Organization.members))
    user = get_user_or_404(path.user_id)
    if not service.remove_member(organization, user):
        abort(404)
    return _answer(organization)


@bp.get("/audit", responses={200: EventPage}, tags=[AUDIT])
def list_events(query: EventFilter):
    """Read the audit log

    Newest first, a page at a time, optionally of one kind of target.
    """
    statement = select(AuditEvent).order_by(AuditEvent.id.desc())
    if query.type:
        statement = statement.filter(AuditEvent.target_type == query.type)
    if query.cursor is not None:
        statement = statement.filter(AuditEvent.id < query.cursor)
    events = db.session.scalars(statement.limit(query.limit + 1)).all()
    page = events[:query.limit]
    return {"items": [Event(id=e.id, at=e.at.isoformat(timespec="seconds"), actor=e.actor, action=e.action,
                            target_type=e.target_type, target_id=e.target_id, target_name=e.target_name,
                            changes=e.changes).model_dump() for e in page],
            "next_cursor": page[-1].id if page and len(events) > query.limit else None}
