"""Building and tearing down workspaces in the background, one log line at a time."""
import dataclasses
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor

from flask import Flask, current_app
from sqlalchemy import event, inspect, select
from sqlalchemy.exc import IntegrityError, InvalidRequestError

from .. import audit, kube
from ..conflicts import Gone
from ..providers.connection import connection_for, limits
from ..database import duplicate_at
from ..extensions import db
from ..metrics import process as metrics
from ..kube import Connection
from ..kube import workspace as kube_workspace
from ..models import BuildLogLine, Provider, Status, Workspace, utcnow
from . import settings
from .forms import DUPLICATE_NAME

log = logging.getLogger(__name__)
PROVIDER_GONE = "This provider was deleted a moment ago: choose another one."


@event.listens_for(Workspace, "before_insert")
def _identity_and_location(mapper, connection, workspace: Workspace) -> None:
    """Every new workspace gets object names from its uid and remembers where it is built
    (its provider's namespace and cluster address now), whichever code path creates it."""
    workspace.uid = workspace.uid or uuid.uuid4().hex
    workspace.object_base = workspace.object_base or kube_workspace.object_base(workspace.uid, workspace.name)
    if workspace.namespace is None:
        provider_id = workspace.provider.id if workspace.provider else workspace.provider_id
        where = connection.execute(select(Provider.namespace, Provider.cluster_address)
                                   .where(Provider.id == provider_id)).first()
        if where is None:  # deleted since the form offered it
            raise Gone("provider")
        workspace.namespace, workspace.cluster_address = where.namespace, where.cluster_address


def spec_for(workspace: Workspace, values: dict | None = None) -> kube_workspace.WorkspaceSpec:
    """The workspace's objects made from `values` (a settings record): by default what it
    was built with, or its provider's settings now when that was never recorded."""
    values = {**settings.current(workspace.provider), **(values or workspace.settings or {})}
    return kube_workspace.WorkspaceSpec(
        uid=workspace.uid, base_name=workspace.object_base,
        legacy_id=workspace.id if workspace.legacy_labels else None,
        name=workspace.name, owner_email=workspace.owner.email,
        owner_username=workspace.owner.username, organization_name=workspace.organization.name,
        provider_name=values["provider_name"], namespace=workspace.namespace, image=workspace.image,
        cpu=workspace.cpu, memory=workspace.memory, disk=workspace.disk,
        access_url=values["access_url"], e2e_encryption=values["e2e_encryption"],
        external_ssh=values["external_ssh"], storage_class=values["storage_class"],
        service_account=values["service_account"], annotations=values["service_account_annotations"],
        tolerations=values["pod_tolerations"], node_selector=values["pod_node_selector"],
        affinity=values["affinity"],
    )


def start(workspace: Workspace, action: str) -> None:
    """Run `build` or `teardown` for the workspace in a background thread."""
    app = current_app._get_current_object()
    pool = app.extensions.setdefault(
        "workspace_builds", ThreadPoolExecutor(max_workers=4, thread_name_prefix="workspace-build"))
    pool.submit(_run, app, workspace.id, action)


def create(form) -> Workspace | None:
    """The workspace of a checked WorkspaceForm, saved and building in the background; None
    when a concurrent create took its name, or a concurrent delete its provider (the message
    is at that field)."""
    provider_id = form.provider.data
    try:
        with duplicate_at(form, "name", message=DUPLICATE_NAME) as refused:
            workspace = form.new_workspace()
            db.session.add(workspace)
            db.session.commit()
    except (Gone, IntegrityError):
        db.session.rollback()
        if db.session.get(Provider, provider_id) is not None:
            raise
        form.provider.errors.append(PROVIDER_GONE)
        return None
    if refused:
        return None
    start(workspace, "build")
    return workspace


def delete_or_queue(workspace: Workspace) -> str | None:
    """Start the teardown ("started"), or queue it behind a running build ("queued"); None
    when a deletion runs already, "gone" when it has just ended. Both are conditional writes, so a build ending at the same
    moment or a second click cannot lose the request or start two teardowns."""
    if workspace.status == "building" and _write_if(workspace, ("building",), delete_requested=True):
        return "queued"
    if inspect(workspace).detached or \
            not _write_if(workspace, ("running", "failed"), status="deleting", status_message=None):
        return "gone" if inspect(workspace).detached else None
    start(workspace, "teardown")
    return "started"


def _write_if(workspace: Workspace, statuses: tuple[str, ...], **values) -> bool:
    written = db.session.execute(db.update(Workspace).where(
        Workspace.id == workspace.id, Workspace.status.in_(statuses)).values(**values))
    db.session.commit()
    try:
        db.session.refresh(workspace)
    except InvalidRequestError:  # a teardown ended meanwhile and removed the record
        db.session.expunge(workspace)
        return False
    return written.rowcount == 1


def rebuild_refusal(workspace: Workspace) -> str | None:
    """Why the workspace cannot be rebuilt now, or None. A cordoned provider still rebuilds:
    a cordon stops new workspaces, and a rebuild replaces the objects of one it has."""
    if workspace.status == "deleting" or workspace.delete_requested:
        return "It is being deleted."
    if workspace.busy:
        return "It is building: wait until the build ends."
    problem = location_problem(workspace)
    if problem:
        return problem + " A rebuild never builds in a new place."
    provider = workspace.provider
    if provider.status != Status.READY.value:
        return (f"Provider {provider.name} is not ready ({provider.status_label}): a rebuild deletes "
                "the pod first, so it waits until the provider is Ready.")
    return None


def rebuild_or_refuse(workspace: Workspace) -> str | None:
    """Start a rebuild with the provider's settings now (None), or say why not. The status
    changes with a conditional write, so two clicks cannot start two rebuilds."""
    refusal = rebuild_refusal(workspace)
    if refusal:
        return refusal
    before = settings.outdated(workspace)
    if not _write_if(workspace, ("running", "failed"), status="building", status_message=None):
        return "Another build or deletion of it has just started."
    audit.record("workspace.rebuild", workspace, {
        "changed": "unknown (never recorded)" if before is None else settings.labels(before) or "nothing"})
    db.session.commit()
    start(workspace, "rebuild")
    return None


def _run(app: Flask, workspace_id: int, action: str) -> None:
    with app.app_context():
        try:
            _step(workspace_id, action)
            if action in ("build", "rebuild") and _start_queued_deletion(workspace_id):
                _step(workspace_id, "teardown")
        finally:
            db.session.remove()


def _step(workspace_id: int, action: str) -> None:
    try:
        steps = {"build": _build, "rebuild": _rebuild, "teardown": _teardown}
        steps[action](db.session.get(Workspace, workspace_id))
    except Exception:
        log.exception("%s of workspace %s failed", action, workspace_id)
        db.session.rollback()
        _finish(db.session.get(Workspace, workspace_id), "failed",
                f"The {action} stopped on an internal error; see the server log.")
    left = db.session.get(Workspace, workspace_id)  # a teardown that worked leaves nothing
    metrics.build_ended(action, succeeded=left is None or left.status != "failed")


def _start_queued_deletion(workspace_id: int) -> bool:
    """Read after the build's final status is committed: a deletion queued while it said
    "building" is seen here, and a later one finds it no longer building and starts itself."""
    db.session.expire_all()
    workspace = db.session.get(Workspace, workspace_id)
    if workspace is None or not workspace.delete_requested:
        return False
    workspace.status, workspace.status_message, workspace.delete_requested = "deleting", None, False
    _writer(workspace)("The build has ended: starting the deletion queued while it ran")
    return True


def _writer(workspace: Workspace):
    def write(line: str) -> None:
        db.session.add(BuildLogLine(workspace_id=workspace.id, at=utcnow(), line=line))
        db.session.commit()  # each line is visible to the live log at once
    return write


def _connection(workspace: Workspace) -> Connection:
    """The provider's credentials, aimed at the namespace the workspace was built in."""
    return dataclasses.replace(connection_for(workspace.provider), namespace=workspace.namespace)


def location_problem(workspace: Workspace) -> str | None:
    """Why the workspace's objects cannot be reached through its provider now (it points
    elsewhere than where they were built), or None. Nothing is ever deleted elsewhere."""
    provider = workspace.provider
    if (provider.namespace, provider.cluster_address) == (workspace.namespace, workspace.cluster_address):
        return None
    return (f"This workspace was built in namespace {workspace.namespace} at "
            f"{workspace.cluster_address or 'the in-cluster API'}, but provider {provider.name} now "
            f"points to namespace {provider.namespace} at {provider.cluster_address or 'the in-cluster API'}.")


def _build(workspace: Workspace) -> None:
    write = _writer(workspace)
    workspace.settings = settings.current(workspace.provider)  # what this build is made with
    write(f"Building on provider {workspace.provider.name}, namespace {workspace.namespace}")
    result = kube_workspace.build(_connection(workspace), spec_for(workspace), write, **limits())
    _finish(workspace, "running" if result.ok else "failed", None if result.ok else result.message)


def _rebuild(workspace: Workspace) -> None:
    write = _writer(workspace)
    problem = location_problem(workspace)
    if problem:  # the provider moved after the rebuild was asked for
        write(problem + " Nothing was rebuilt.")
        return _finish(workspace, "failed", problem + " Nothing was rebuilt.")
    values = settings.for_rebuild(workspace)
    old = settings.outdated(workspace)
    write(f"Rebuilding on provider {workspace.provider.name} with its current settings"
          + (f" (changed: {settings.labels(old)})" if old else "")
          + f"; the home volume claim {kube_workspace.object_names(spec_for(workspace))['pvc']} is kept")
    result = kube.rebuild_workspace(_connection(workspace), spec_for(workspace, values), write,
                                    **limits())
    if result.ok:  # after a failure the record stays, and the page still offers a rebuild
        workspace.settings = values
    _finish(workspace, "running" if result.ok else "failed", None if result.ok else result.message)


def _teardown(workspace: Workspace) -> None:
    write = _writer(workspace)
    problem = location_problem(workspace)
    if problem:
        problem += (" Nothing was deleted: point the provider back to where the workspace was "
                    "built, or ask a site admin to remove the record.")
        write(problem)
        return _finish(workspace, "failed", problem)
    write(f"Deleting the workspace's objects from namespace {workspace.namespace}")
    result = kube_workspace.teardown(_connection(workspace), spec_for(workspace), write, **limits())
    if result.ok:
        if result.left:  # someone else's objects under its names: a trace once the record is gone
            audit.record("workspace.delete", workspace, {"left_in_cluster": [" ".join(ref) for ref in result.left],
                                                         "reason": "not this workspace's"}, actor="workspace teardown")
        db.session.delete(workspace)
        db.session.commit()
    else:
        _finish(workspace, "failed", result.message)


def _finish(workspace: Workspace | None, status: str, message: str | None) -> None:
    if workspace is None:
        return
    workspace.status, workspace.status_message = status, message
    db.session.commit()


def settle_if_interrupted(workspace: Workspace) -> None:
    """A build or deletion whose thread died with its server (a restart, a crash) would say
    Building or Deleting forever. Each step logs within a few timeouts, so a long silence
    means it stopped: say so, and the workspace can be deleted (teardown is idempotent)."""
    if not workspace.busy:
        return
    timeout = float(current_app.config["CHECK_TIMEOUT"])
    silent_for = (utcnow() - max([workspace.updated_at] + [line.at for line in workspace.log[-1:]])).total_seconds()
    if silent_for < max(120.0, 20 * timeout):
        return
    what = "build" if workspace.status == "building" else "deletion"
    workspace.delete_requested = False  # nothing will end the build to start it: delete anew
    _finish(workspace, "failed", f"The {what} stopped without finishing (the server was restarted while it "
                                 "ran). Delete the workspace to remove whatever it made in the cluster.")


def pod_state(workspace: Workspace) -> kube.PodState:
    """The phase of the workspace's pod as the cluster reports it now (one request)."""
    problem = location_problem(workspace)
    if problem:
        return kube.PodState(None, problem + " Its pod is not looked for elsewhere.")
    timeout = min(3.0, float(current_app.config["CHECK_TIMEOUT"]))
    return kube.pod_state(_connection(workspace), spec_for(workspace), timeout=timeout)


def ssh_address(workspace: Workspace) -> tuple[str | None, str] | None:
    """The external SSH address of a workspace built with external SSH (one request), as
    (address or None, what to say instead); None when it was built without."""
    if not (workspace.settings or {}).get("external_ssh") or location_problem(workspace):
        return None
    timeout = min(3.0, float(current_app.config["CHECK_TIMEOUT"]))
    return kube.ssh_address(_connection(workspace), spec_for(workspace), timeout=timeout)


def object_list(workspace: Workspace) -> list[str]:
    """"Kind name" of every object a build of this workspace makes, for the user to see."""
    return [f"{o['kind']} {o['metadata']['name']}"
            for o in kube_workspace.workspace_objects(spec_for(workspace))]
