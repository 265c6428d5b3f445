"""/api/v1/workspaces: members their own workspaces, managers everyone's, with the rules of
the Workspaces pages (the same form, the same build, the same deletion)."""
from flask import Response, abort, json, url_for
from flask_login import current_user
from flask_openapi3 import Tag
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.datastructures import MultiDict

from ..extensions import db
from ..models import Workspace
from ..problems import problem
from ..workspaces import builds
from ..workspaces.forms import WorkspaceForm
from ..workspaces.views import get_workspace_or_404
from .areas import area
from .schemas import Id, Line, Parameters

TAG = Tag(name="Workspaces", description="Members: their own workspaces; managers and admins: everyone's.")
bp = area("workspaces", TAG, prefix="/workspaces")


class NewWorkspace(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Line = Field(min_length=1, max_length=40, description="A DNS label, unique among your workspaces.")
    organization: Line | None = Field(None, max_length=64, description="One of yours, by name; default: your first.")
    provider: Line = Field(min_length=1, max_length=64, description="A provider your organization may use, by name.")
    image: Line | None = Field(None, max_length=512)
    cpu: Line | None = Field(None, max_length=16, description='e.g. "2" or "500m".')
    memory: Line | None = Field(None, max_length=16, description='e.g. "4Gi".')
    disk: Line | None = Field(None, max_length=16, description='e.g. "10Gi".')


class LogLine(BaseModel):
    at: str
    line: str


class WorkspaceOut(BaseModel):
    id: int
    name: str
    owner: str
    organization: str
    provider: str
    provider_id: int
    image: str
    cpu: str
    memory: str
    disk: str
    status: str = Field(description="building, running, failed or deleting.")
    status_message: str | None
    delete_requested: bool = Field(description="A deletion waits for the build to end.")
    created_at: str
    log: list[LogLine] | None = Field(None, description="The build log (on a single workspace).")


class WorkspaceList(BaseModel):
    items: list[WorkspaceOut]


class WorkspaceFilter(Parameters):
    model_config = ConfigDict(extra="forbid")
    provider_id: int | None = Field(None, ge=1, le=2**31 - 1, description="Managers: one provider's.")


class WorkspacePath(BaseModel):
    workspace_id: int = Id


class Deletion(BaseModel):
    outcome: str = Field(description="`started`, or `queued` behind the running build.")


def _body(workspace: Workspace, with_log: bool = False) -> dict:
    return WorkspaceOut(
        id=workspace.id, name=workspace.name, owner=workspace.owner.email, organization=workspace.organization.name,
        provider=workspace.provider.name, provider_id=workspace.provider_id, image=workspace.image,
        cpu=workspace.cpu, memory=workspace.memory, disk=workspace.disk, status=workspace.status,
        status_message=workspace.status_message, delete_requested=bool(workspace.delete_requested),
        created_at=workspace.created_at.isoformat(timespec="seconds"),
        log=[LogLine(at=line.at.isoformat(timespec="seconds"), line=line.line) for line in workspace.log]
        if with_log else None).model_dump(exclude_none=not with_log)


@bp.get("", responses={200: WorkspaceList})
def list_workspaces(query: WorkspaceFilter):
    """List workspaces

    Your own; for site managers and admins everyone's, optionally on one provider.
    """
    statement = select(Workspace).options(selectinload(Workspace.owner), selectinload(Workspace.provider),
                                          selectinload(Workspace.organization)).order_by(Workspace.id)
    if not current_user.can_manage:
        statement = statement.filter(Workspace.owner_id == current_user.id)
    elif query.provider_id:
        statement = statement.filter(Workspace.provider_id == query.provider_id)
    return {"items": [_body(w) for w in db.session.scalars(statement)]}


@bp.get("/<int:workspace_id>", responses={200: WorkspaceOut})
def get_workspace(path: WorkspacePath):
    """Get a workspace with its build log"""
    workspace = get_workspace_or_404(path.workspace_id)  # someone else's: as if missing
    builds.settle_if_interrupted(workspace)
    return _body(workspace, with_log=True)


@bp.post("", responses={201: WorkspaceOut})
def create_workspace(body: NewWorkspace):
    """Create a workspace

    On a provider its organization may use now; it builds in the background (poll it).
    """
    form = WorkspaceForm(formdata=_formdata(body), owner=current_user, meta={"csrf": False})
    if form.validate() and (workspace := builds.create(form)) is not None:
        return Response(json.dumps(_body(workspace)), 201, mimetype="application/json", headers={
            "Location": url_for("api.workspaces.get_workspace", workspace_id=workspace.id)})
    return problem(422, "Invalid workspace", "Some values were refused; see errors.", errors=[
        {"pointer": f"/{field.name}", "detail": str(message)} for field in form for message in field.errors])


def _formdata(body: NewWorkspace) -> MultiDict:
    """Names as the form's ids: an organization or provider that is not yours to use is left
    out, and the form refuses it with its own words."""
    data = MultiDict({k: v for k, v in body.model_dump(exclude={"organization", "provider"}).items() if v})
    organizations = {o.name.lower(): o.id for o in current_user.organizations}
    if body.organization is not None:
        data["organization"] = str(organizations.get(body.organization.lower(), -1))
    elif organizations:
        data["organization"] = str(next(iter(organizations.values())))
    chosen = WorkspaceForm(formdata=MultiDict(data), owner=current_user, meta={"csrf": False})
    offered = {p.name.lower(): p.id for p, _ in chosen.offers}
    data["provider"] = str(offered.get(body.provider.lower(), -1))  # -1: "Not a valid choice"
    return data


@bp.delete("/<int:workspace_id>", responses={202: Deletion, 409: None})
def delete_workspace(path: WorkspacePath):
    """Delete a workspace

    Its objects are removed from the cluster, then the record; while it builds, the deletion
    is queued. Its owner and site admins may delete it.
    """
    workspace = get_workspace_or_404(path.workspace_id)  # someone else's: as if missing
    if not workspace.can_be_deleted_by(current_user):
        abort(403)
    builds.settle_if_interrupted(workspace)
    outcome = builds.delete_or_queue(workspace)
    if outcome == "gone":  # the deletion that ran already has just ended
        abort(404)
    if outcome is None:
        return problem(409, "Deletion under way", "The workspace is being deleted already.")
    return Deletion(outcome=outcome).model_dump(), 202
