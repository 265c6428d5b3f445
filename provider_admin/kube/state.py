"""What the cluster reports of a running workspace: its pod's phase (and why it is stuck),
and the external SSH address of its Service. One GET each; never raise."""
from __future__ import annotations

from dataclasses import dataclass

from . import errors as e
from .client import Budget, get_client
from .connection import Connection
from .objects import read
from .services import WAITING, external_address
from .workspace import UID_LABEL, WorkspaceSpec, object_names, owned


@dataclass(frozen=True)
class PodState:
    """What the cluster says of a workspace's pod: its phase and, when it is stuck, why."""

    phase: str | None  # Pending, Running, Succeeded, Failed, Unknown; None when unread
    detail: str = ""
    ready: bool = False


def pod_state(conn: Connection, spec: WorkspaceSpec, timeout: float = 5.0) -> PodState:
    """Read the pod (one GET); never raises. The detail names the first thing that holds it
    back: an unschedulable pod (the provider's scheduling), an image that will not pull, a
    crashing container."""
    namespace, pod = spec.namespace, object_names(spec)["pod"]
    try:
        status, obj, reason = read(get_client(conn), conn, namespace, ("Pod", pod),
                                     Budget("Reading the pod", timeout, timeout))
    except Exception as exc:  # certificates that do not load
        return PodState(None, f"The request failed: {e.snippet(exc)}")
    if status == 404:
        return PodState(None, f"Pod {pod} is not in namespace {namespace}: it was deleted "
                              "from the cluster. Delete the workspace and create it again.")
    if status != 200:
        return PodState(None, reason)
    if not owned(obj, spec):
        return PodState(None, f"Pod {pod} in namespace {namespace} is not this workspace's (it "
                              f"lacks the label {UID_LABEL}={spec.uid}).")
    pod_status = obj.get("status")
    return _pod_state(pod_status if isinstance(pod_status, dict) else {})


def _pod_state(status: dict) -> PodState:
    phase = e.snippet(status.get("phase") or "Pending", 32)
    conditions = {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, dict)}
    ready = (conditions.get("Ready") or {}).get("status") == "True"
    scheduled = conditions.get("PodScheduled") or {}
    if scheduled.get("status") == "False":
        why = " ".join(p for p in (scheduled.get("reason"), scheduled.get("message")) if p)
        return PodState(phase, f"Not scheduled: {e.snippet(why)}" if why else "Not scheduled yet.")
    for container in status.get("containerStatuses") or []:
        waiting = ((container or {}).get("state") or {}).get("waiting") or {}
        if waiting.get("reason") and waiting["reason"] not in ("ContainerCreating", "PodInitializing"):
            why = ": ".join(p for p in (waiting["reason"], waiting.get("message")) if p)
            return PodState(phase, f"Container {e.snippet(container.get('name'), 63)} is waiting: {e.snippet(why)}")
    if phase == "Failed":
        return PodState(phase, e.snippet(status.get("message") or status.get("reason") or "The pod failed."))
    return PodState(phase, "", ready)


def ssh_address(conn: Connection, spec: WorkspaceSpec, timeout: float = 5.0) -> tuple[str | None, str]:
    """(the Service's external "host:port" or None, what to say instead): read the workspace's
    SSH Service (one GET)."""
    namespace, name = spec.namespace, object_names(spec)["service"]
    try:
        status, obj, reason = read(get_client(conn), conn, namespace, ("Service", name),
                                     Budget("Reading the Service", timeout, timeout))
    except Exception as exc:  # certificates that do not load
        return None, f"The request failed: {e.snippet(exc)}"
    if status == 404:
        return None, (f"Service {name} is not in namespace {namespace}: rebuild the workspace "
                      "to expose SSH again.")
    if status != 200:
        return None, reason
    if not owned(obj, spec):
        return None, (f"Service {name} in namespace {namespace} is not this workspace's (it "
                      f"lacks the label {UID_LABEL}={spec.uid}).")
    address = external_address(obj)
    return address, "" if address else WAITING
