"""Deploy: converge a provider's bootstrap objects like `kubectl apply`, the ones it owns only.

Each object is read first. Absent: created. Present and labelled with this provider's uid:
the fields Provider Admin manages (its labels and annotations, Role rules, binding subjects
and roleRef, ConfigMap data) are compared and patched when they differ. Present without the
uid: left alone, never modified; a Namespace that was already there is used as it is.
All of its requests share one `budget` of seconds: a slow cluster costs at most that, and the
objects it did not reach are listed as not tried.
"""
from __future__ import annotations

import json
from typing import NamedTuple

from . import errors as e
from .client import Budget, get_client, send
from .client import quote_segment as q
from .connection import Connection
from .permissions import MANAGED_BY_LABEL, MARKER_KEY, MARKER_NAME, MARKER_UID_KEY, UID_LABEL

CREATED = "created"
UPDATED = "updated"
UNCHANGED = "unchanged"
NAMESPACE_USED = "already present: used as it is, not created by Provider Admin"
LEFT_ALONE = "left alone: not created by Provider Admin"
COULD_NOT = "could not touch: "
NOT_TRIED = "not tried: Deploy stops at the first object it could not touch"
DELETED = "deleted"
ALREADY_ABSENT = "already absent"

# kind -> (apiVersion, plural, namespaced) for the kinds the bootstrap manifest uses.
KINDS = {
    "Namespace": ("v1", "namespaces", False),
    "ServiceAccount": ("v1", "serviceaccounts", True),
    "Secret": ("v1", "secrets", True),
    "Role": ("rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("rbac.authorization.k8s.io/v1", "rolebindings", True),
    "ClusterRole": ("rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "ConfigMap": ("v1", "configmaps", True),
}
# Top-level fields Provider Admin manages, besides its own labels and annotations.
MANAGED_FIELDS = {"Role": ("rules",), "ClusterRole": ("rules",), "ConfigMap": ("data",),
                  "RoleBinding": ("subjects", "roleRef"),
                  "ClusterRoleBinding": ("subjects", "roleRef")}
MERGE_PATCH = "application/merge-patch+json"
VERBS = {"GET": "get", "POST": "create", "PATCH": "patch", "DELETE": "delete"}


class Outcome(NamedTuple):
    """What happened to one object; `namespace` is "" for cluster-wide objects."""

    kind: str
    name: str
    result: str
    namespace: str = ""

    def __str__(self) -> str:
        if not self.kind:  # nothing was tried: the reason is the whole story
            return self.result
        where = f" in namespace {self.namespace}" if self.namespace else ""
        return f"{self.kind} {self.name}{where}: {self.result}".strip()

    @property
    def failed(self) -> bool:
        return self.result.startswith(COULD_NOT)


class Unreachable(Exception):
    """The cluster could not be talked to at all; the message says why."""


class Session:
    """One client and one budget for a run of requests; transport failures raise Unreachable."""

    def __init__(self, conn: Connection, budget: Budget):
        self.conn, self.budget = conn, budget
        self.api = get_client(conn)

    def send(self, method: str, path: str, body=None, content_type: str | None = None):
        """(status, parsed JSON or {}, the server's message for errors)."""
        timeout = self.budget.timeout
        try:
            status, text = send(self.api, method, path, timeout=timeout, body=body,
                                content_type=content_type, deadline=self.budget.deadline)
        except Exception as exc:
            found = e.classify_transport(exc, self.conn, timeout, self.budget)
            raise Unreachable(found[1] if found else f"failed: {e.snippet(exc)}") from None
        if status >= 400:
            return status, {}, e.server_message(text)
        try:
            data = json.loads(text or "{}")
        except ValueError:
            data = {}
        return status, data if isinstance(data, dict) else {}, ""


def path_of(kind: str, name: str | None = None, namespace: str = "") -> str:
    """The API path of an object (or of its collection when `name` is None)."""
    if kind not in KINDS:
        raise ValueError(f"Cannot deploy objects of kind {kind}.")
    api_version, plural, namespaced = KINDS[kind]
    path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    if namespaced:
        path += f"/namespaces/{q(namespace)}"
    path += f"/{plural}"
    return path + f"/{q(name)}" if name is not None else path


APPLY_BY_HAND = "apply the bootstrap manifest with kubectl as a cluster admin instead"


def failure(status: int, message: str, method: str, kind: str, namespace: str = "",
            fix: str = APPLY_BY_HAND) -> str:
    """Why a request was refused, and what to do about it."""
    plural = KINDS[kind][1]
    verb = VERBS.get(method, method.lower())
    where = f" in namespace {namespace}" if namespace else " (cluster-wide)"
    said = f" ({message})" if message else ""
    if status == 401:
        return (f"unauthorized: the cluster rejected the stored credentials{said}; "
                "update the provider's token")
    if status == 403:
        return f"forbidden: the stored credentials may not {verb} {plural}{where}; {fix}"
    return f"failed: {status} on {verb} {plural}{where}{said}"


def deploy(conn: Connection, objs: list[dict], *, provider_uid: str, provider_name: str,
           timeout: float = 5.0, budget: float = 15.0) -> list[Outcome]:
    """Converge each object in order, all within `budget` seconds (each request within
    `timeout`); stops at the first one it could not touch and lists the rest as not tried (the
    marker comes last, so "deployed" still implies everything before it was applied)."""
    owner = _Owner(provider_uid)
    try:
        session = Session(conn, Budget("Deploy", budget, timeout))
        owner.adopt_legacy = _legacy_marker_names(session, conn.namespace, provider_name)
    except (ValueError, Unreachable) as exc:  # said of the object it was about to touch
        first = objs[0]["metadata"] if objs else {"name": ""}
        return [Outcome(objs[0]["kind"] if objs else "", first["name"], COULD_NOT + str(exc),
                        first.get("namespace", ""))] + _not_tried(objs[1:])
    results: list[Outcome] = []
    for obj in objs:
        meta = obj["metadata"]
        try:
            result = _converge(session, obj, owner)
        except Unreachable as exc:
            result = COULD_NOT + str(exc)
        results.append(Outcome(obj["kind"], meta["name"], result, meta.get("namespace", "")))
        if results[-1].failed:
            break
    return results + _not_tried(objs[len(results):])


def _not_tried(objs: list[dict]) -> list[Outcome]:
    return [Outcome(o["kind"], o["metadata"]["name"], NOT_TRIED, o["metadata"].get("namespace", ""))
            for o in objs]


def succeeded(outcomes: list[Outcome]) -> bool:
    """True when no object failed."""
    return not any(o.failed for o in outcomes)


def describe(outcomes: list[Outcome]) -> str:
    """One line per object, e.g. "Role provider-admin in namespace ws: created"."""
    return "\n".join(map(str, outcomes))


class _Owner:
    """Whether a live object is this provider's: it carries the provider's uid, or, for a
    namespace whose marker predates uids and names this provider, Provider Admin's label."""

    def __init__(self, uid: str):
        self.uid = uid
        self.adopt_legacy = False

    def owns(self, live: dict, kind: str, name: str) -> bool:
        labels = (live.get("metadata") or {}).get("labels") or {}
        if labels.get(UID_LABEL):
            return labels[UID_LABEL] == self.uid
        managed = all(labels.get(k) == v for k, v in MANAGED_BY_LABEL.items())
        return self.adopt_legacy and (managed or (kind, name) == ("ConfigMap", MARKER_NAME))


def _legacy_marker_names(session: Session, namespace: str, provider_name: str) -> bool:
    """The namespace's marker was written before uids and names this provider."""
    status, marker, _ = session.send("GET", path_of("ConfigMap", MARKER_NAME, namespace))
    data = marker.get("data") if status == 200 and isinstance(marker.get("data"), dict) else {}
    return bool(data) and not data.get(MARKER_UID_KEY) and data.get(MARKER_KEY) == provider_name


def _converge(session: Session, obj: dict, owner: _Owner) -> str:
    kind, name = obj["kind"], obj["metadata"]["name"]
    namespace = obj["metadata"].get("namespace", "")
    status, live, message = session.send("GET", path_of(kind, name, namespace))
    if status == 404:
        return _create(session, obj)
    if status >= 400:
        return COULD_NOT + failure(status, message, "GET", kind, namespace)
    if not owner.owns(live, kind, name):
        return NAMESPACE_USED if kind == "Namespace" else LEFT_ALONE
    patch = _difference(obj, live)
    if not patch:
        return UNCHANGED
    if "roleRef" in patch:  # immutable in Kubernetes: replace the binding
        status, _, message = session.send("DELETE", path_of(kind, name, namespace))
        if status >= 400 and status != 404:
            return COULD_NOT + failure(status, message, "DELETE", kind, namespace)
        result = _create(session, obj)
        return f"{UPDATED} (recreated: its roleRef changed)" if result == CREATED else result
    status, _, message = session.send("PATCH", path_of(kind, name, namespace), patch, MERGE_PATCH)
    if status >= 400:
        return COULD_NOT + failure(status, message, "PATCH", kind, namespace)
    return UPDATED


def _create(session: Session, obj: dict) -> str:
    kind, namespace = obj["kind"], obj["metadata"].get("namespace", "")
    status, _, message = session.send("POST", path_of(kind, namespace=namespace), obj)
    if status < 300:
        return CREATED
    return COULD_NOT + failure(status, message, "POST", kind, namespace)


def _difference(desired: dict, live: dict) -> dict:
    """A merge patch that brings the managed fields of `live` to `desired` ({} when equal).
    Maps (labels, annotations, ConfigMap data) are compared key by key, so keys that others
    added stay; lists and roleRef are compared whole."""
    patch: dict = {}
    live_meta = live.get("metadata") or {}
    meta = {key: changed for key in ("labels", "annotations")
            if (changed := _changed_keys(desired["metadata"].get(key), live_meta.get(key)))}
    if meta:
        patch["metadata"] = meta
    for field in MANAGED_FIELDS.get(desired["kind"], ()):
        want, have = desired.get(field), live.get(field)
        if isinstance(want, dict) and field == "data":
            if changed := _changed_keys(want, have):
                patch[field] = changed
        elif want != have:
            patch[field] = want
    return patch


def _changed_keys(want: dict | None, have: dict | None) -> dict:
    have = have if isinstance(have, dict) else {}
    return {k: v for k, v in (want or {}).items() if have.get(k) != v}


def undeploy(conn: Connection, objs: list[dict], timeout: float = 5.0) -> list[Outcome]:
    """Delete the given objects in reverse order, whoever made them (404 counts as already
    absent). For test clusters only: the app removes a bootstrap with `remove_bootstrap`."""
    session = Session(conn, Budget("Undeploy", timeout * (len(objs) + 1), timeout))
    results = []
    for obj in reversed(objs):
        kind, meta = obj["kind"], obj["metadata"]
        status, _, message = session.send("DELETE", path_of(kind, meta["name"],
                                                            meta.get("namespace", "")))
        result = (ALREADY_ABSENT if status == 404 else DELETED if status < 300
                  else COULD_NOT + failure(status, message, "DELETE", kind, meta.get("namespace", "")))
        results.append(Outcome(kind, meta["name"], result, meta.get("namespace", "")))
    return results
