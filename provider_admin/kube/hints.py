"""Warnings about a provider's scheduling settings, from the cluster's nodes and storage classes.

Each hint names a setting that would leave workspace pods or volumes Pending, and what to
change. They are advice for the edit form and the provider page: `scheduling_hints()` never
raises, and says so in a single note when it cannot read what it needs. What they quote from
the cluster (names, labels, taints) is a short excerpt.
"""
from __future__ import annotations

import json
import time

from . import errors as e
from .client import get_client, send
from .connection import Connection

NODES_PATH = "/api/v1/nodes"
STORAGE_CLASSES_PATH = "/apis/storage.k8s.io/v1/storageclasses"
ZONE_LABELS = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")
DEFAULT_CLASS_ANNOTATIONS = ("storageclass.kubernetes.io/is-default-class",
                             "storageclass.beta.kubernetes.io/is-default-class")
HARD_EFFECTS = ("NoSchedule", "NoExecute")  # PreferNoSchedule only discourages
NOTE_PREFIX = "Scheduling hints "  # starts every note that says why there are no hints
FORBIDDEN_NOTE = (
    "Scheduling hints need permission to read nodes and storage classes (get, list), which "
    "the stored credentials lack: apply the bootstrap manifest with its optional ClusterRole."
)


class _Unavailable(Exception):
    """Ends the look-up with a single note."""


def scheduling_hints(conn: Connection, *, node_selector: dict | None, tolerations: list | None,
                     storage_class: str | None, affinity_stored: dict | None,
                     timeout: float = 5.0) -> list[str]:
    """Plain-text hints for these settings on this cluster; [] when nothing looks wrong.
    Both look-ups together take at most `timeout`."""
    deadline = time.monotonic() + timeout
    try:
        api = get_client(conn)
        nodes = _items(api, conn, NODES_PATH, "nodes", timeout, deadline)
        classes = _items(api, conn, STORAGE_CLASSES_PATH, "storage classes", timeout, deadline)
    except _Unavailable as exc:
        return [str(exc)]
    except Exception as exc:  # a hint is never worth an error page
        return [f"Scheduling hints are unavailable: {e.snippet(exc) or type(exc).__name__}"]
    return hints_from(nodes, classes, node_selector=node_selector, tolerations=tolerations,
                      storage_class=storage_class, affinity_stored=affinity_stored)


def _items(api, conn: Connection, path: str, what: str, timeout: float,
           deadline: float) -> list[dict]:
    try:
        status, text = send(api, "GET", path, timeout=timeout, deadline=deadline)
    except Exception as exc:
        found = e.classify_transport(exc, conn, timeout)
        raise _Unavailable("Scheduling hints are unavailable: "
                           + (found[1] if found else e.snippet(exc))) from None
    if status == 403:
        raise _Unavailable(FORBIDDEN_NOTE)
    if status != 200:
        detail = e.classify_http(status, text, f"list {what}")[1]
        raise _Unavailable(f"Scheduling hints are unavailable: {detail}")
    try:
        items = json.loads(text).get("items") or []
    except (ValueError, AttributeError):
        raise _Unavailable(f"Scheduling hints are unavailable: the list of {what} "
                           "is not a Kubernetes list.") from None
    return [item for item in items if isinstance(item, dict)]


def hints_from(nodes: list[dict], classes: list[dict], *, node_selector: dict | None,
               tolerations: list | None, storage_class: str | None,
               affinity_stored: dict | None) -> list[str]:
    """The hints for these node and StorageClass objects (pure, for tests and reuse).

    Only the node selector and tolerations are weighed: a required node affinity in a custom
    affinity could rule out more nodes, which these hints do not claim to know.
    """
    hints = []
    selector = node_selector or {}
    matching = [n for n in nodes if _matches(_labels(n), selector)]
    if not nodes:
        hints.append("The cluster reports no nodes: workspace pods cannot be scheduled until "
                     "nodes join it.")
    elif not matching:
        hints.append(_selector_hint(selector, nodes))
    blocking = {_name(n): _untolerated(n, tolerations or []) for n in matching}
    candidates = [n for n in matching if not blocking[_name(n)]]
    if matching and not candidates:
        taints = sorted({t for found in blocking.values() for t in found})
        which = "Every node that matches the node selector" if selector else "Every node"
        hints.append(
            f"{which} has a taint that the pod tolerations do not tolerate: "
            f"{e.snippet(', '.join(taints))}. Workspace pods would stay Pending: add a toleration "
            f"for {'it' if len(taints) == 1 else 'them'}, e.g. "
            f"{e.snippet(_example_toleration(taints[0]))}."
        )
    sc_hint, sc = _storage_class(classes, storage_class)
    if sc_hint:
        hints.append(sc_hint)
    zones = sorted({z for z in (_zone(n) for n in candidates) if z})
    mode = (sc or {}).get("volumeBindingMode") or ""
    if sc and affinity_stored is None and len(zones) > 1 and mode in ("", "Immediate"):
        which = (f"storage class {e.snippet(_name(sc))}" if storage_class
                 else f"cluster's default storage class {e.snippet(_name(sc))}")
        binding = "volumeBindingMode Immediate" if mode else "volumeBindingMode unset: Immediate"
        hints.append(
            f"The nodes span {len(zones)} availability zones ({e.snippet(', '.join(zones))}) and the "
            f"{which} binds volumes as soon as they are claimed ({binding}). With Coder's "
            "default affinity this can cause pods to become saturated in a single zone and "
            "become unschedulable, because persistent disks are often zonal. Set Affinity to "
            "{} to unset the default affinity and allow the default behavior of the Kubernetes "
            "scheduler, or use a storage class with volumeBindingMode WaitForFirstConsumer."
        )
    return hints


def tolerates(toleration: dict, taint: dict) -> bool:
    """Kubernetes' Toleration.ToleratesTaint (k8s.io/api/core/v1/toleration.go)."""
    effect, key = toleration.get("effect") or "", toleration.get("key") or ""
    if effect and effect != taint.get("effect"):
        return False  # an empty effect matches every effect
    if key and key != taint.get("key"):
        return False  # an empty key (allowed with Exists only) matches every key
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    if operator == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False  # an operator this code does not know tolerates nothing


def _untolerated(node: dict, tolerations: list) -> list[str]:
    """The node's hard taints that no toleration tolerates, as key=value:Effect."""
    taints = ((node.get("spec") or {}).get("taints")) or []
    return [_show_taint(t) for t in taints if isinstance(t, dict)
            and t.get("effect") in HARD_EFFECTS
            and not any(tolerates(tol, t) for tol in tolerations if isinstance(tol, dict))]


def _show_taint(taint: dict) -> str:
    value = f"={taint['value']}" if taint.get("value") else ""
    return f"{taint.get('key')}{value}:{taint.get('effect')}"


def _example_toleration(shown: str) -> str:
    key_value, effect = shown.rsplit(":", 1)
    return json.dumps({"key": key_value.split("=", 1)[0], "operator": "Exists", "effect": effect})


def _selector_hint(selector: dict, nodes: list[dict]) -> str:
    problems = []
    for key, value in selector.items():
        found = sorted({_labels(n)[key] for n in nodes if key in _labels(n)})
        if not found:
            problems.append(f"no node has the label {key}")
        elif value not in found:
            problems.append(f"{key} is {e.snippet(' or '.join(found))} on the nodes, never {value}")
    why = "; ".join(problems) or "no single node has all of these labels"
    return (f"No node matches the pod node selector {json.dumps(selector, sort_keys=True)} "
            f"({why}): workspace pods would stay Pending. Fix the node selector or label the "
            "nodes meant for workspaces.")


def _storage_class(classes: list[dict], name: str | None) -> tuple[str | None, dict | None]:
    """(hint, the StorageClass the home volumes would get)."""
    names = sorted(_name(c) for c in classes)
    have = f" (it has: {e.snippet(', '.join(names))})" if names else " (it has none)"
    if name:
        found = next((c for c in classes if _name(c) == name), None)
        if found is None:
            return (f"The storage class {name} does not exist in the cluster{have}: home volume "
                    "claims would stay Pending. Choose an existing one on the provider."), None
        return None, found
    defaults = [c for c in classes if any(
        ((c.get("metadata") or {}).get("annotations") or {}).get(a) == "true"
        for a in DEFAULT_CLASS_ANNOTATIONS)]
    if not defaults:
        return ("The provider sets no storage class and the cluster has no default storage "
                f"class{have}: home volume claims may stay Pending. Set a storage class on the "
                "provider."), None
    # With several defaults, Kubernetes uses the newest one.
    return None, max(defaults, key=lambda c: str((c.get("metadata") or {})
                                                 .get("creationTimestamp") or ""))


def _matches(labels: dict, selector: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _labels(obj: dict) -> dict:
    return (obj.get("metadata") or {}).get("labels") or {}


def _name(obj: dict) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _zone(node: dict) -> str | None:
    labels = _labels(node)
    return next((labels[k] for k in ZONE_LABELS if labels.get(k)), None)
