from flask import Response, abort, flash, redirect, request, session, url_for
from flask_login import current_user
from sqlalchemy.orm import selectinload

from .. import audit
from ..database import duplicate_at
from ..extensions import db
from ..forms import ConfirmForm
from ..htmx import done, is_fragment_request, render
from ..models import Organization, Provider, Workspace
from ..web import arg_int
from . import bp, builds
from .eligibility import providers_for, reason_not_eligible
from .forms import WorkspaceForm


DELETING = "deleting_workspaces"  # session key: ids whose deletion this browser started


def get_workspace_or_404(workspace_id: int) -> Workspace:
    """The workspace, if the current user may see it (their own, or any for managers)."""
    workspace = db.session.get(Workspace, workspace_id)
    if workspace is None or not (current_user.can_manage or workspace.owner_id == current_user.id):
        abort(404)
    return workspace


@bp.get("/")
def index():
    """My workspaces; site admins and managers see everyone's, optionally per provider."""
    query = db.select(Workspace).options(
        selectinload(Workspace.owner), selectinload(Workspace.provider), selectinload(Workspace.organization)
    ).order_by(Workspace.name)
    if not current_user.can_manage:
        query = query.filter(Workspace.owner_id == current_user.id)
    provider = None
    provider_id = arg_int(request.args, "provider")
    if provider_id and current_user.can_manage:
        provider = db.session.get(Provider, provider_id) or abort(404)
        query = query.filter(Workspace.provider_id == provider_id)
    return render("workspaces/index.html", "workspaces/_list.html", workspaces=db.session.scalars(query).all(),
                  provider=provider)


@bp.route("/new", methods=["GET", "POST"])
def create():
    """Create a workspace on a provider its organization may use; the build runs in the background."""
    # A GET with arguments is the form re-rendered for another organization: keep what was typed.
    form = WorkspaceForm(formdata=request.args if request.method == "GET" and request.args else None) \
        if request.method == "GET" else WorkspaceForm()
    organizations = current_user.organizations
    form.organization.choices = [(o.id, o.name) for o in organizations]
    organization = _chosen(organizations, form.organization.data or arg_int(request.args, "organization"))
    choices = providers_for(organization, current_user)
    form.provider.choices = [(p.id, p.name) for p, _ in choices]
    if request.method == "POST" and form.validate():
        provider = next(p for p, _ in choices if p.id == form.provider.data)
        reason = reason_not_eligible(provider, organization)
        if reason:
            form.provider.errors.append(f"{provider.name} cannot take new workspaces: {reason}.")
        else:
            with duplicate_at(form, "name", message="You already have a workspace with this name.") as refused:
                workspace = Workspace(name=form.name.data, owner=current_user, organization=organization,
                                      provider=provider, image=form.image.data, cpu=form.cpu.data,
                                      memory=form.memory.data, disk=form.disk.data, status="building")
                db.session.add(workspace)
                db.session.commit()
            if not refused:
                builds.start(workspace, "build")
                return done(url_for(".show", workspace_id=workspace.id))
    status = 422 if request.method == "POST" else 200
    return render("workspaces/new.html", "workspaces/_form.html", status, form=form, choices=choices,
                  organization=organization)


@bp.get("/<int:workspace_id>")
def show(workspace_id: int):
    """The workspace with its build log, which updates live while it builds."""
    if db.session.get(Workspace, workspace_id) is None and workspace_id in session.get(DELETING, []) \
            and (is_fragment_request() or request.args.get("deleting")):
        # The live page of a workspace whose deletion (asked for in this session) just finished,
        # or finished before the page after "Delete" loaded, goes back to the list.
        flash("The workspace was deleted.", "success")
        if not is_fragment_request():
            return redirect(url_for(".index"), code=303)
        response = Response(status=200)
        response.headers["HX-Redirect"] = url_for(".index")
        return response
    workspace = get_workspace_or_404(workspace_id)
    builds.settle_if_interrupted(workspace)
    response = render("workspaces/show.html", "workspaces/_detail.html", workspace=workspace,
                      confirm=ConfirmForm())
    if is_fragment_request() and not workspace.busy:
        response.status_code = 286  # tells htmx to stop polling
    return response


@bp.get("/<int:workspace_id>/pod")
def pod(workspace_id: int):
    """The pod's phase in the cluster, and why it is stuck when it is (refreshed by the page)."""
    workspace = get_workspace_or_404(workspace_id)
    state = builds.pod_state(workspace) if workspace.status == "running" else None
    return render("workspaces/pod.html", "workspaces/_pod.html", workspace=workspace, state=state)


@bp.route("/<int:workspace_id>/delete", methods=["GET", "POST"])
def delete(workspace_id: int):
    """Delete a workspace: its objects are removed from the cluster, then the record. While it
    builds, the deletion is queued and starts when the build ends."""
    workspace = get_workspace_or_404(workspace_id)
    if workspace.owner_id != current_user.id and not current_user.is_admin:
        abort(403)
    builds.settle_if_interrupted(workspace)
    form = ConfirmForm()
    if form.validate_on_submit():
        outcome = builds.delete_or_queue(workspace)
        if outcome:
            # Only a deletion asked for in this session may later be announced as done.
            session[DELETING] = (session.get(DELETING, []) + [workspace.id])[-20:]
        if outcome == "queued":
            flash("Deletion queued: it starts when the build finishes.", "info")
            return done(url_for(".show", workspace_id=workspace.id))
        if outcome == "started":
            return done(url_for(".show", workspace_id=workspace.id, deleting=1))
    status = 409 if request.method == "POST" and form.validate() else 200  # a deletion runs already
    return render("workspaces/delete.html", "workspaces/_delete.html", status, workspace=workspace, form=form)


@bp.route("/<int:workspace_id>/forget", methods=["GET", "POST"])
def forget(workspace_id: int):
    """Admins only: remove the record of a workspace whose cluster cannot delete it."""
    workspace = get_workspace_or_404(workspace_id)
    if not current_user.is_admin:
        abort(403)
    form = ConfirmForm()
    if form.validate_on_submit() and workspace.status == "failed":
        audit.record("workspace.forget", workspace, {"left_in_cluster": builds.object_list(workspace)})
        db.session.delete(workspace)
        db.session.commit()
        flash(f"The record of workspace {workspace.name} was removed.", "success")
        return done(url_for(".index"))
    return render("workspaces/forget.html", "workspaces/_forget.html", workspace=workspace, form=form,
                  objects=builds.object_list(workspace))


def _chosen(organizations: list[Organization], organization_id) -> Organization | None:
    by_id = {o.id: o for o in organizations}
    return by_id.get(organization_id) or (organizations[0] if organizations else None)
