"""Building and tearing down workspaces in the background, one log line at a time."""
import logging
from concurrent.futures import ThreadPoolExecutor

from flask import Flask, current_app

from ..checks.jobs import connection_for
from ..extensions import db
from ..models import BuildLogLine, Workspace, utcnow
from ..kube import workspace as kube_workspace

log = logging.getLogger(__name__)


def spec_for(workspace: Workspace) -> kube_workspace.WorkspaceSpec:
    provider = workspace.provider
    return kube_workspace.WorkspaceSpec(
        workspace_id=workspace.id, name=workspace.name, owner_email=workspace.owner.email,
        owner_username=workspace.owner.username, organization_name=workspace.organization.name,
        provider_name=provider.name, namespace=provider.namespace, image=workspace.image,
        cpu=workspace.cpu, memory=workspace.memory, disk=workspace.disk,
        access_url=provider.access_url or current_app.config["SITE_ACCESS_URL"],
        e2e_encryption=provider.e2e_encryption, external_ssh=provider.external_ssh,
        storage_class=provider.storage_class, service_account=provider.service_account,
        annotations=provider.service_account_annotations, tolerations=provider.pod_tolerations,
        node_selector=provider.pod_node_selector, affinity=provider.affinity,
    )


def start(workspace: Workspace, action: str) -> None:
    """Run `build` or `teardown` for the workspace in a background thread."""
    app = current_app._get_current_object()
    pool = app.extensions.setdefault(
        "workspace_builds", ThreadPoolExecutor(max_workers=4, thread_name_prefix="workspace-build"))
    pool.submit(_run, app, workspace.id, action)


def _run(app: Flask, workspace_id: int, action: str) -> None:
    with app.app_context():
        try:
            (_build if action == "build" else _teardown)(db.session.get(Workspace, workspace_id))
        except Exception:
            log.exception("%s of workspace %s failed", action, workspace_id)
            db.session.rollback()
            _finish(db.session.get(Workspace, workspace_id), "failed",
                    f"The {action} stopped on an internal error; see the server log.")
        finally:
            db.session.remove()


def _writer(workspace: Workspace):
    def write(line: str) -> None:
        db.session.add(BuildLogLine(workspace_id=workspace.id, at=utcnow(), line=line))
        db.session.commit()  # each line is visible to the live log at once
    return write


def _build(workspace: Workspace) -> None:
    write = _writer(workspace)
    write(f"Building on provider {workspace.provider.name}, namespace {workspace.provider.namespace}")
    result = kube_workspace.build(connection_for(workspace.provider), spec_for(workspace), write,
                                  timeout=current_app.config["CHECK_TIMEOUT"])
    _finish(workspace, "running" if result.ok else "failed", None if result.ok else result.message)


def _teardown(workspace: Workspace) -> None:
    write = _writer(workspace)
    write("Deleting the workspace's objects from the cluster")
    result = kube_workspace.teardown(connection_for(workspace.provider), spec_for(workspace), write,
                                     timeout=current_app.config["CHECK_TIMEOUT"])
    if result.ok:
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
    _finish(workspace, "failed", f"The {what} stopped without finishing (the server was restarted while it "
                                 "ran). Delete the workspace to remove whatever it made in the cluster.")


def pod_state(workspace: Workspace) -> kube_workspace.PodState:
    """The phase of the workspace's pod as the cluster reports it now (one request)."""
    timeout = min(3.0, float(current_app.config["CHECK_TIMEOUT"]))
    return kube_workspace.pod_state(connection_for(workspace.provider), spec_for(workspace), timeout=timeout)


def object_list(workspace: Workspace) -> list[str]:
    """"Kind name" of every object a build of this workspace makes, for the user to see."""
    return [f"{o['kind']} {o['metadata']['name']}"
            for o in kube_workspace.workspace_objects(spec_for(workspace))]
