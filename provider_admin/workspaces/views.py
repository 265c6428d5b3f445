from flask import abort, flash, request, session, url_for
from flask_login import current_user
from sqlalchemy.orm import selectinload

from .. import audit
from ..extensions import db
from ..forms import ConfirmForm
from ..htmx import done, is_fragment_request, render
from ..models import Workspace
from ..web import arg_int
from ..providers.queries import get_provider_or_404
from . import bp, builds, settings
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
        provider = get_provider_or_404(provider_id)
        query = query.filter(Workspace.provider_id == provider_id)
    return render("workspaces/index.html", "workspaces/_list.html", workspaces=db.session.scalars(query).all(),
                  provider=provider)


@bp.route("/new", methods=["GET", "POST"])
def create():
    """Create a workspace on a provider its organization may use; the build runs in the background."""
    form = _workspace_form()
    if form.validate_on_submit() and (workspace := builds.create(form)) is not None:
        return done(url_for(".show", workspace_id=workspace.id))
    return render("workspaces/new.html", "workspaces/_form.html", 422 if form.errors else 200, form=form,
                  choices=form.offers, organization=form.chosen_organization)


@bp.get("/<int:workspace_id>")
def show(workspace_id: int):
    """The workspace with its build log, which updates live while it builds."""
    if db.session.get(Workspace, workspace_id) is None and workspace_id in session.get(DELETING, []) \
            and (is_fragment_request() or request.args.get("deleting")):
        # The live page of a workspace whose deletion (asked for in this session) just finished,
        # or finished before the page after "Delete" loaded, goes back to the list.
        flash("The workspace was deleted.", "success")
        return done(url_for(".index"))
    workspace = get_workspace_or_404(workspace_id)
    builds.settle_if_interrupted(workspace)
    response = render("workspaces/show.html", "workspaces/_detail.html", workspace=workspace,
                      confirm=ConfirmForm(), **_settings_context(workspace))
    if is_fragment_request() and not workspace.busy:
        response.status_code = 286  # tells htmx to stop polling
    return response


@bp.get("/<int:workspace_id>/pod")
def pod(workspace_id: int):
    """The pod's phase in the cluster, and why it is stuck when it is (refreshed by the page)."""
    workspace = get_workspace_or_404(workspace_id)
    running = workspace.status == "running"
    state = builds.pod_state(workspace) if running else None
    ssh = builds.ssh_address(workspace) if running else None
    return render("workspaces/pod.html", "workspaces/_pod.html", workspace=workspace, state=state, ssh=ssh)


@bp.route("/<int:workspace_id>/delete", methods=["GET", "POST"])
def delete(workspace_id: int):
    """Delete a workspace: its objects are removed from the cluster, then the record. While it
    builds, the deletion is queued and starts when the build ends."""
    workspace = get_workspace_or_404(workspace_id)
    if not workspace.can_be_deleted_by(current_user):
        abort(403)
    builds.settle_if_interrupted(workspace)
    form = ConfirmForm()
    if form.validate_on_submit():
        outcome = builds.delete_or_queue(workspace)
        if outcome == "gone":  # the deletion that ran already has just ended
            flash("The workspace was deleted.", "info")
            return done(url_for(".index"))
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


@bp.post("/<int:workspace_id>/rebuild")
def rebuild(workspace_id: int):
    """Rebuild a workspace with its provider's current settings, keeping its home volume; the
    build runs in the background. Allowed to whoever may delete the workspace."""
    workspace = get_workspace_or_404(workspace_id)
    if not workspace.can_be_deleted_by(current_user):  # who may delete it may rebuild it
        abort(403)
    builds.settle_if_interrupted(workspace)
    if ConfirmForm().validate_on_submit():
        refusal = builds.rebuild_or_refuse(workspace)
        if refusal:
            flash(f"Workspace {workspace.name} was not rebuilt: {refusal}", "error")
        else:
            flash(f"Rebuilding workspace {workspace.name} with the provider's current settings; "
                  "its home volume is kept.", "info")
    return done(url_for(".show", workspace_id=workspace.id))


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
    status = 409 if form.is_submitted() else 200  # only a failed workspace's record may go
    return render("workspaces/forget.html", "workspaces/_forget.html", status, workspace=workspace, form=form,
                  objects=builds.object_list(workspace))


def _settings_context(workspace: Workspace) -> dict:
    now = settings.current(workspace.provider)
    found = settings.differences(workspace.settings, now)
    outdated = None if found is None else [s for s in found if s.rebuilt]
    return {"outdated": outdated, "outdated_labels": settings.labels(outdated or []),
            "kept": [s for s in found or [] if not s.rebuilt]}


def _workspace_form() -> WorkspaceForm:
    """The form as posted; on a GET with arguments, the form re-rendered for another
    organization, keeping what was typed."""
    formdata = {"formdata": request.args or None} if request.method == "GET" else {}
    return WorkspaceForm(owner=current_user, organization_id=arg_int(request.args, "organization"), **formdata)
