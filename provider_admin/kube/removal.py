"""Removing a provider's bootstrap: only what Deploy created and that still carries its uid.

A Namespace goes only when Deploy created it and it holds nothing that is not this
provider's (the kinds in NAMESPACE_CONTENTS are listed; what Kubernetes makes in every
namespace by itself does not count). Whatever stays is said, with the reason. All requests
share one budget of seconds, so a provider's deletion waits at most that for its cluster.
"""
from __future__ import annotations

from typing import NamedTuple

from .client import Budget
from .client import quote_segment as q
from .deploy import Outcome, Session, Unreachable, failure, path_of
from .permissions import UID_LABEL

REMOVED = "removed"
ALREADY_ABSENT = "already absent"
NOT_OURS = "left: it no longer carries this provider's id"
COULD_NOT_REMOVE = "could not remove: "
# The reverse of the manifest's order: the marker first, the namespace last.
REMOVAL_ORDER = ("ConfigMap", "ClusterRoleBinding", "ClusterRole", "RoleBinding", "Role",
                 "Secret", "ServiceAccount", "Namespace")
NAMESPACE_CONTENTS = (
    ("/api/v1", "pods", "Pod"), ("/api/v1", "persistentvolumeclaims", "PersistentVolumeClaim"),
    ("/api/v1", "configmaps", "ConfigMap"), ("/api/v1", "secrets", "Secret"),
    ("/api/v1", "serviceaccounts", "ServiceAccount"), ("/api/v1", "services", "Service"),
    ("/apis/rbac.authorization.k8s.io/v1", "roles", "Role"),
    ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding"),
    ("/apis/apps/v1", "deployments", "Deployment"), ("/apis/apps/v1", "statefulsets", "StatefulSet"),
    ("/apis/apps/v1", "daemonsets", "DaemonSet"), ("/apis/batch/v1", "jobs", "Job"),
    ("/apis/batch/v1", "cronjobs", "CronJob"),
)
# Made by Kubernetes in every namespace: they do not make a namespace someone else's.
SYSTEM_MADE = {("ServiceAccount", "default"), ("ConfigMap", "kube-root-ca.crt")}
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"


class Ref(NamedTuple):
    """An object Deploy created; `namespace` is "" for cluster-wide ones (and Namespaces)."""

    kind: str
    namespace: str
    name: str


def remove_bootstrap(conn, recorded: list[Ref], *, provider_uid: str,
                     timeout: float = 5.0, budget: float = 15.0) -> list[Outcome]:
    """Delete the recorded objects that still carry `provider_uid`, all within `budget`
    seconds (each request within `timeout`); one Outcome per object."""
    ordered = sorted(recorded, key=lambda ref: REMOVAL_ORDER.index(ref.kind))
    results: list[Outcome] = []
    try:
        session = Session(conn, Budget("removing the bootstrap", budget, timeout))
        for ref in ordered:
            results.append(Outcome(ref.kind, ref.name, _remove(session, ref, provider_uid),
                                   ref.namespace))
    except (ValueError, Unreachable) as exc:
        results += [Outcome(ref.kind, ref.name, COULD_NOT_REMOVE + str(exc), ref.namespace)
                    for ref in ordered[len(results):]]
    return results


def by_hand(outcomes: list[Outcome]) -> list[str]:
    """kubectl commands that remove what could not be removed."""
    commands = []
    for o in outcomes:
        if not o.result.startswith(COULD_NOT_REMOVE):
            continue
        if o.kind == "Namespace":
            commands.append(f"kubectl delete namespace {o.name}  # only if `kubectl get all,pvc,"
                            f"configmaps,secrets -n {o.name}` lists nothing else")
        else:
            where = f" -n {o.namespace}" if o.namespace else ""
            commands.append(f"kubectl delete {o.kind.lower()} {o.name}{where}")
    return commands


def _remove(session: Session, ref: Ref, uid: str) -> str:
    path = path_of(ref.kind, ref.name, ref.namespace)
    status, live, message = session.send("GET", path)
    if status == 404:
        return ALREADY_ABSENT
    if status >= 400:
        return COULD_NOT_REMOVE + _reason(status, message, "GET", ref)
    if not _carries(live, uid):
        return NOT_OURS
    if ref.kind == "Namespace" and (kept := _why_the_namespace_stays(session, ref.name, uid)):
        return kept
    return _delete(session, ref, path)


def _why_the_namespace_stays(session: Session, namespace: str, uid: str) -> str | None:
    """Why a namespace may not go (it holds objects that are not this provider's), or None."""
    others: list[str] = []
    for prefix, plural, kind in NAMESPACE_CONTENTS:
        status, listed, message = session.send("GET", f"{prefix}/namespaces/{q(namespace)}/{plural}")
        if status == 404:
            continue  # a kind this cluster does not serve holds nothing
        if status >= 400:
            return (f"left: could not make sure it holds nothing else ({status} on list {plural}"
                    f"{': ' + message if message else ''})")
        others += [f"{kind} {(item.get('metadata') or {}).get('name')}" for item in listed.get("items") or []
                   if not _carries(item, uid) and not _system_made(kind, item)]
    if others:
        named = ", ".join(others[:2]) + (f" and {len(others) - 2} more" if len(others) > 2 else "")
        return f"left: it holds objects that are not this provider's ({named})"
    return None


def _delete(session: Session, ref: Ref, path: str) -> str:
    status, _, message = session.send("DELETE", path)
    if status == 404:
        return ALREADY_ABSENT
    if status >= 400:
        return COULD_NOT_REMOVE + _reason(status, message, "DELETE", ref)
    return REMOVED


def _reason(status: int, message: str, method: str, ref: Ref) -> str:
    return failure(status, message, method, ref.kind, ref.namespace,
                   fix="remove it with kubectl as a cluster admin instead")


def _carries(obj: dict, uid: str) -> bool:
    return ((obj.get("metadata") or {}).get("labels") or {}).get(UID_LABEL) == uid


def _system_made(kind: str, obj: dict) -> bool:
    meta = obj.get("metadata") or {}
    if (kind, meta.get("name")) in SYSTEM_MADE:
        return True
    # Before Kubernetes 1.24, every service account got a token Secret of its own.
    return (kind == "Secret" and obj.get("type") == "kubernetes.io/service-account-token"
            and (meta.get("annotations") or {}).get(SA_NAME_ANNOTATION) == "default")
