"""A workspace's objects in its provider's namespace: what they are, creating and removing them.
`build()` and `teardown()` report one plain-text line per step through `log` (the live build
log) and never raise: the result says what happened and which objects were left behind. Each
step (creating the objects, removing them again after a failure, deleting them) has a budget
of seconds for all its requests, so a cluster that hangs or trickles ends it as failed, saying
so, instead of holding it."""
from __future__ import annotations

import copy
import functools
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import errors as e
from . import scheduling
from .client import Budget, get_client
from .connection import Connection
from .manifest import DNS_LABEL
from .objects import KINDS, Ref, read, request
from .objects import listed as _list
from .objects import show as _show
from .permissions import MANAGED_BY_LABEL
from .services import service_spec

RESOURCE_LABEL = "com.coder.resource"  # what the default affinity's label selector matches
# Every object carries its workspace's uid, which is never reused: a build adopts, a teardown
# deletes and the pod card reads only objects that carry it.
UID_LABEL = "provider-admin.io/workspace-uid"
# What objects of workspaces built before the uid label carry instead: the database id.
LEGACY_ID_LABEL = "com.coder.workspace.id"
Log = Callable[[str], None]
_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkspaceSpec:
    """Everything a workspace's objects are made from; the provider's fields are as stored."""

    uid: str  # never reused; in UID_LABEL on every object
    base_name: str  # object_base() at creation, stored with the workspace
    name: str  # a DNS-1123 label
    owner_email: str
    owner_username: str
    organization_name: str
    provider_name: str
    namespace: str
    image: str
    cpu: str  # a Kubernetes quantity: "2", "500m"
    memory: str  # "4Gi"
    disk: str  # "10Gi"
    access_url: str
    e2e_encryption: bool = False
    external_ssh: bool = False  # a LoadBalancer Service exposes the pod's SSH port
    storage_class: str | None = None
    service_account: str | None = None  # the provider's
    annotations: dict | None = None  # raw, with template variables
    tolerations: list | None = None
    node_selector: dict | None = None
    affinity: dict | None = None  # None: the default affinity; {}: none
    legacy_id: int | None = None  # built before UID_LABEL: its objects carry this id instead


@dataclass
class BuildResult:
    ok: bool
    message: str
    created: list[Ref] = field(default_factory=list)  # by this build, even if removed again
    remaining: list[Ref] = field(default_factory=list)  # created (or maybe) and still there


@dataclass
class TeardownResult:
    ok: bool
    message: str
    remaining: list[Ref] = field(default_factory=list)
    left: list[Ref] = field(default_factory=list)  # same-named objects that are not its own


def object_base(uid: str, name: str) -> str:
    """The stem of a new workspace's object names: "ws-", ten hex digits of its uid, its name.
    From the uid, never from a database id, which SQLite may hand out again."""
    _check_name(name)
    if not re.fullmatch(r"[0-9a-f]{10,}", uid or ""):
        raise ValueError(f"The workspace uid {uid!r} is not a hex string.")
    return f"ws-{uid[:10]}-{name}"[:63]


def object_names(spec: WorkspaceSpec) -> dict[str, str]:
    """Names from the stored stem, so a re-run or a teardown finds them: at most 63
    characters (a pod's name is its hostname); the uid prefix survives truncation."""
    _check_name(spec.name)
    base = spec.base_name or ""
    if not DNS_LABEL.match(base[:63].rstrip("-")):
        raise ValueError(f"The object name stem {base!r} is not a valid DNS-1123 label.")
    pod = base[:63].rstrip("-")
    return {"pod": pod, "pvc": base[:58].rstrip("-") + "-home", "service_account": pod, "service": pod}


def _check_name(name: str) -> None:
    if not DNS_LABEL.match(name or ""):
        raise ValueError(f"The workspace name {name!r} is not a valid DNS-1123 label.")


def owned(obj: dict, spec: WorkspaceSpec) -> bool:
    """Whether an object found in the cluster is this workspace's: it carries its uid (or,
    built before the uid label, its id and no uid at all)."""
    labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
    if UID_LABEL in labels or spec.legacy_id is None:
        return labels.get(UID_LABEL) == spec.uid
    return labels.get(LEGACY_ID_LABEL) == str(spec.legacy_id)


def rendered_annotations(spec: WorkspaceSpec) -> dict[str, str]:
    """The provider's service account annotations with the owner's values filled in."""
    variables = {"UserEmail": spec.owner_email, "Username": spec.owner_username,
                 "WorkspaceName": spec.name, "OrganizationName": spec.organization_name}
    return {key: scheduling.render_annotation(str(value), variables)
            for key, value in (spec.annotations or {}).items()}


def workspace_objects(spec: WorkspaceSpec) -> list[dict]:
    """ServiceAccount (only with annotations), PersistentVolumeClaim, Pod, and the Service
    that exposes SSH (only with external SSH): in build order."""
    names = object_names(spec)
    objs = []
    service_account = spec.service_account or None
    if spec.annotations:
        service_account = names["service_account"]
        objs.append(_object("ServiceAccount", service_account, spec, rendered_annotations(spec)))
    claim = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": spec.disk}}}
    if spec.storage_class:
        claim["storageClassName"] = spec.storage_class
    objs.append({**_object("PersistentVolumeClaim", names["pvc"], spec), "spec": claim})
    objs.append({**_object("Pod", names["pod"], spec),
                 "spec": _pod_spec(spec, names["pvc"], service_account)})
    if spec.external_ssh:
        objs.append({**_object("Service", names["service"], spec),
                     "spec": service_spec({UID_LABEL: spec.uid})})
    return objs


def _object(kind: str, name: str, spec: WorkspaceSpec, annotations: dict | None = None) -> dict:
    labels = {RESOURCE_LABEL: "true", UID_LABEL: spec.uid, **MANAGED_BY_LABEL}
    meta = {"name": name, "namespace": spec.namespace, "labels": labels}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": kind, "metadata": meta}


def _pod_spec(spec: WorkspaceSpec, claim: str, service_account: str | None) -> dict:
    resources = {"cpu": spec.cpu, "memory": spec.memory}
    env = {"CODER_USER_EMAIL": spec.owner_email, "CODER_USERNAME": spec.owner_username,
           "CODER_WORKSPACE_NAME": spec.name, "CODER_WORKSPACE_PROVIDER": spec.provider_name,
           "CODER_ACCESS_URL": spec.access_url or "",
           "CODER_E2E_ENCRYPTION": "true" if spec.e2e_encryption else "false",
           "CODER_EXTERNAL_SSH": "true" if spec.external_ssh else "false"}
    pod: dict = {
        "containers": [{
            "name": "dev", "image": spec.image,
            # requests = limits: the Guaranteed QoS class, the last to be evicted from a busy node
            "resources": {"requests": dict(resources), "limits": dict(resources)},
            "env": [{"name": k, "value": v} for k, v in env.items()],
            "volumeMounts": [{"name": "home", "mountPath": "/home/coder"}],
        }],
        "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": claim}}],
    }
    if spec.tolerations:
        pod["tolerations"] = copy.deepcopy(list(spec.tolerations))
    if spec.node_selector:
        pod["nodeSelector"] = dict(spec.node_selector)
    affinity = scheduling.effective_affinity(spec.affinity)
    if affinity:  # {} means "no affinity": leave the field out altogether
        pod["affinity"] = copy.deepcopy(affinity)
    if service_account:
        pod["serviceAccountName"] = service_account
    else:  # the namespace's "default" account: its token has no business in a workspace
        pod["automountServiceAccountToken"] = False
    return pod


def build(conn: Connection, spec: WorkspaceSpec, log: Log, timeout: float = 5.0,
          budget: float = 15.0) -> BuildResult:
    """Create the objects in order. An object that exists already is adopted only when it is
    this workspace's own (a re-run after a restart); anything else stops the build. On a
    failure, whatever this build created is removed again, in reverse order. Creating and
    removing take at most `budget` seconds each (each request at most `timeout`)."""
    say = _safe(log)
    try:
        objs = workspace_objects(spec)
        api = get_client(conn)
    except Exception as exc:  # an invalid name, certificates that do not load, bad data
        say(f"Cannot build: {e.snippet(exc) or type(exc).__name__}")
        return BuildResult(False, f"Cannot build: {e.snippet(exc) or type(exc).__name__}")
    created: list[Ref] = []  # only these are removed on a failure, never an earlier build's
    refs = [(obj["kind"], obj["metadata"]["name"]) for obj in objs]
    creating = Budget("creating the workspace's objects", budget, timeout)
    undo = functools.partial(_undo, api, conn, spec.namespace, say,
                             lambda: Budget("removing what the build created", budget, timeout))
    for obj, ref in zip(objs, refs):
        status, reason, maybe = request(api, conn, "POST", spec.namespace, ref, creating, obj)
        if status in (200, 201, 202):
            created.append(ref)
            say(_created_line(obj))
            continue
        if status == 409:
            refusal = _not_adoptable(api, conn, spec, ref, creating)
            if refusal is None:
                say(f"{_show(ref)} already exists from an earlier run of this workspace's build; "
                    "using it")
                continue
            say(refusal)
            return undo(created, ref, refusal, False)
        say(f"Creating {_show(ref)} failed: {reason}")
        return undo(created, ref, f"Creating {_show(ref)} failed: {reason.rstrip('.')}.", maybe)
    message = f"Created {_list(created) or 'nothing'} in namespace {spec.namespace}"
    existing = [ref for ref in refs if ref not in created]
    message += f"; already present from an earlier run: {_list(existing)}." if existing else "."
    return BuildResult(True, message, created)


def _not_adoptable(api, conn, spec: WorkspaceSpec, ref: Ref, budget: Budget) -> str | None:
    """None when the existing object is this workspace's own; else why the build stops."""
    status, obj, reason = read(api, conn, spec.namespace, ref, budget)
    if status == 200 and owned(obj, spec):
        return None
    if status == 200:
        return f"{_show(ref)} already exists and belongs to something else; nothing was changed."
    return (f"{_show(ref)} already exists, and whose it is could not be read "
            f"({reason.rstrip('.') if reason else 'it is gone again'}); nothing was changed.")


def _undo(api, conn, namespace, say, budget, created, failed: Ref, message: str,
          maybe: bool) -> BuildResult:
    """Remove what the build created, with a `budget()` of its own: the build's may be spent."""
    remaining: list[Ref] = []
    if created:
        say(f"Removing what this build created: {_list(created[::-1])}")
        remaining = _delete(api, conn, namespace, created[::-1], say, budget(), "remove")
        message += (f" Removing what this build created failed; still in namespace {namespace}: "
                    f"{_list(remaining)}." if remaining
                    else " The objects this build created were removed again.")
    if maybe:
        # It may exist, but deleting blindly could destroy an earlier build's home volume.
        say(f"{_show(failed)} may exist anyway: the cluster's answer was lost")
        message += (f" The cluster's answer was lost, so {_show(failed)} may exist: deleting "
                    "the workspace removes it.")
        remaining.append(failed)
    return BuildResult(False, message, created, remaining)


def teardown(conn: Connection, spec: WorkspaceSpec, log: Log, timeout: float = 5.0,
             keep: tuple[str, ...] = (), budget: float = 15.0) -> TeardownResult:
    """Delete the SSH Service, the pod, the home volume claim and the service account (but
    not the kinds in `keep`), each only when it carries this workspace's label: a same-named
    object without it is left and reported. Without annotations the account, and without
    external SSH the Service, are tried in case an earlier setting made one, but their absence
    or a 403 is no failure. All within `budget` seconds (each request within `timeout`).
    `remaining`: own objects not confirmed deleted."""
    say = _safe(log)
    try:
        names, namespace = object_names(spec), spec.namespace
        refs = [(kind, names[key]) for kind, (_, key) in KINDS.items() if kind not in keep]
        optional = {r for r in refs if (r[0] == "ServiceAccount" and not spec.annotations)
                    or (r[0] == "Service" and not spec.external_ssh)}
        api = get_client(conn)
    except Exception as exc:  # an invalid name, certificates that do not load, bad data
        say(f"Cannot delete: {e.snippet(exc) or type(exc).__name__}")
        return TeardownResult(False, f"Cannot delete: {e.snippet(exc) or type(exc).__name__}")
    remaining, left = [], []
    deleting = Budget("deleting the pod before the rebuild" if keep else "deleting the workspace's objects",
                      budget, timeout)
    for index, ref in enumerate(refs):
        status, obj, reason = read(api, conn, namespace, ref, deleting)
        if status == 404 or (ref in optional and status == 403):
            if ref not in optional:  # an object that was never made is not news
                say(f"{_show(ref)} was already gone")
        elif status != 200:
            say(f"Could not read {_show(ref)}: {reason}")
            if status is None:  # out of reach: the rest would only wait for the same timeout
                remaining += [r for r in refs[index:] if r not in optional]
                break
            remaining += [] if ref in optional else [ref]
        elif not owned(obj, spec):
            say(f"{_show(ref)} is not this workspace's (it lacks the label {UID_LABEL}="
                f"{spec.uid}); left in place")
            left.append(ref)
        else:
            remaining += _delete(api, conn, namespace, [ref], say, deleting, "delete", optional)
    remaining = [r for r in remaining if r not in optional]
    note = f" Left in place, not this workspace's: {_list(left)}." if left else ""
    if remaining:
        return TeardownResult(False, f"Could not delete everything; still in namespace "
                                     f"{namespace}: {_list(remaining)}.{note}", remaining, left)
    return TeardownResult(True, f"Deleted the workspace's objects from namespace {namespace}.{note}",
                          left=left)


def rebuild(conn: Connection, spec: WorkspaceSpec, log: Log, timeout: float = 5.0,
            wait: float = 90.0, budget: float = 15.0) -> BuildResult:
    """Recreate the workspace's objects from `spec` while keeping its home volume claim (and
    its SSH Service while external SSH stays on, so that its address stays): delete the pod
    and the service account, wait until the pod is gone, then build, which adopts what was
    kept. A failed build removes only what it created, never the kept volume. Each step takes
    at most `budget` seconds, the wait at most `wait`."""
    say = _safe(log)
    kept = ("PersistentVolumeClaim",) + (("Service",) if spec.external_ssh else ())
    removed = teardown(conn, spec, log, timeout, keep=kept, budget=budget)
    if not removed.ok or removed.left:
        return BuildResult(False, "Rebuild stopped before building: " + removed.message)
    gone = _wait_until_gone(conn, spec, say, timeout, wait)
    if gone is not None:
        return BuildResult(False, gone)
    return build(conn, spec, log, timeout, budget)


def _wait_until_gone(conn: Connection, spec: WorkspaceSpec, say: Log, timeout: float,
                     wait: float) -> str | None:
    """None once the pod is gone (a deleted pod terminates gracefully first); else why not."""
    ref, deadline, told = ("Pod", object_names(spec)["pod"]), time.monotonic() + wait, False
    api = get_client(conn)
    while True:  # at most `wait` and one more look
        status, _, reason = read(api, conn, spec.namespace, ref, Budget("a look", timeout, timeout))
        if status == 404:
            return None
        if status != 200:
            return f"Could not see whether {_show(ref)} is gone: {reason}"
        if time.monotonic() >= deadline:
            return f"{_show(ref)} was still terminating after {wait:.0f} seconds; rebuild again later."
        if not told:
            say(f"Waiting for {_show(ref)} to terminate")
            told = True
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


def _delete(api, conn, namespace: str, refs: list[Ref], say, budget: Budget, verb: str,
            optional: set[Ref] = frozenset()) -> list[Ref]:
    """DELETE each; returns those not confirmed gone (all the rest once the cluster is out of
    reach: they would only wait for the same timeout)."""
    for index, ref in enumerate(refs):
        status, reason, _ = request(api, conn, "DELETE", namespace, ref, budget)
        if status in (200, 202):
            say(f"{verb.capitalize()}d {_show(ref)}")
        elif status == 404 or (ref in optional and status == 403):
            if ref not in optional:  # an account that was never made is not news
                say(f"{_show(ref)} was already gone")
        else:
            say(f"Could not {verb} {_show(ref)}: {reason}")
            rest = refs[index + 1:]
            return [ref] + (rest if status is None
                            else _delete(api, conn, namespace, rest, say, budget, verb, optional))
    return []


def _created_line(obj: dict) -> str:
    meta, spec = obj["metadata"], obj.get("spec") or {}
    if obj["kind"] == "ServiceAccount":
        pairs = [f"{k}={e.snippet(v)}" for k, v in meta["annotations"].items()]
        detail = f"with annotation{'s' if len(pairs) > 1 else ''} {', '.join(pairs)}"
    elif obj["kind"] == "Service":
        detail = f"(type LoadBalancer, exposing SSH on port {spec['ports'][0]['port']} outside the cluster)"
    elif obj["kind"] == "PersistentVolumeClaim":
        sc = spec.get("storageClassName")
        detail = (f"({spec['resources']['requests']['storage']}, "
                  f"{f'storage class {sc}' if sc else 'the cluster default storage class'})")
    else:
        container, sa = spec["containers"][0], spec.get("serviceAccountName")
        limits = container["resources"]["limits"]
        detail = (f"(image {container['image']}, cpu {limits['cpu']}, memory {limits['memory']}, "
                  f"{f'service account {sa}' if sa else 'no service account'})")
    return f"Created {obj['kind']} {meta['name']} {detail}"


def _safe(log: Log) -> Log:
    """The caller's log minus its exceptions: a failing log must not stop a cleanup."""
    def say(line: str) -> None:
        try:
            log(line)
        except Exception:
            _logger.exception("The workspace log callback failed on: %s", line)
    return say
