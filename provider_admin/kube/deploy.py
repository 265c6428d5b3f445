"""Apply (or remove) the bootstrap objects with a provider's stored credentials."""
from __future__ import annotations

from . import errors as e
from .client import get_client, send
from .client import quote_segment as q
from .connection import Connection

CREATED = "created"
ALREADY_PRESENT = "already present"
DELETED = "deleted"
ALREADY_ABSENT = "already absent"

# kind -> (plural, namespaced) for the kinds the bootstrap manifest uses.
KINDS = {
    "Namespace": ("namespaces", False),
    "ServiceAccount": ("serviceaccounts", True),
    "Secret": ("secrets", True),
    "ConfigMap": ("configmaps", True),
    "Role": ("roles", True),
    "RoleBinding": ("rolebindings", True),
    "ClusterRole": ("clusterroles", False),
    "ClusterRoleBinding": ("clusterrolebindings", False),
}

Outcome = tuple[str, str, str]


def deploy(conn: Connection, objs: list[dict], timeout: float = 5.0) -> list[Outcome]:
    """Create each object in order; 409 counts as already present.

    Returns (kind, name, outcome) per object tried; outcome is "created", "already
    present" or an error message. Stops at the first error, which is the last entry.
    """
    return _apply(conn, objs, timeout, "POST", {200: CREATED, 201: CREATED, 202: CREATED,
                                                409: ALREADY_PRESENT})


def undeploy(conn: Connection, objs: list[dict], timeout: float = 5.0) -> list[Outcome]:
    """Delete the objects in reverse order; 404 counts as already absent."""
    return _apply(conn, list(reversed(objs)), timeout, "DELETE",
                  {200: DELETED, 202: DELETED, 404: ALREADY_ABSENT})


def succeeded(outcomes: list[Outcome]) -> bool:
    """True when every object ended created/present (or deleted/absent)."""
    return all(o in (CREATED, ALREADY_PRESENT, DELETED, ALREADY_ABSENT) for _, _, o in outcomes)


def _apply(conn: Connection, objs: list[dict], timeout: float, method: str,
           good: dict[int, str]) -> list[Outcome]:
    results: list[Outcome] = []
    try:
        api = get_client(conn)
    except ValueError as exc:
        return [("", "", str(exc))]
    for obj in objs:
        kind, name = obj["kind"], obj["metadata"]["name"]
        try:
            status, message = _send(api, method, obj, timeout)
        except Exception as exc:  # transport failures end the run with a clear message
            found = e.classify_transport(exc, conn, timeout)
            results.append((kind, name, found[1] if found else f"failed: {e.snippet(exc)}"))
            break
        if status in good:
            results.append((kind, name, good[status]))
            continue
        results.append((kind, name, _failure(status, message, method, obj)))
        break
    return results


def _send(api, method: str, obj: dict, timeout: float) -> tuple[int, str]:
    path = _path(obj, with_name=method != "POST")
    status, text = send(api, method, path, timeout=timeout, body=obj if method == "POST" else None)
    return status, e.server_message(text) if status >= 400 else ""


def _path(obj: dict, *, with_name: bool) -> str:
    kind = obj["kind"]
    if kind not in KINDS:
        raise ValueError(f"Cannot deploy objects of kind {kind}.")
    plural, namespaced = KINDS[kind]
    api_version = obj["apiVersion"]
    path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    if namespaced:
        path += f"/namespaces/{q(obj['metadata']['namespace'])}"
    path += f"/{plural}"
    return path + f"/{q(obj['metadata']['name'])}" if with_name else path


def _failure(status: int, message: str, method: str, obj: dict) -> str:
    plural, namespaced = KINDS[obj["kind"]]
    verb = "create" if method == "POST" else "delete"
    where = f" in namespace {obj['metadata']['namespace']}" if namespaced else " (cluster-wide)"
    said = f" ({message})" if message else ""
    if status == 401:
        return (f"unauthorized: the cluster rejected the stored credentials{said}; "
                "update the provider's token")
    if status == 403:
        return (f"forbidden: the stored credentials may not {verb} {plural}{where}; apply the "
                "bootstrap manifest with kubectl as a cluster admin instead")
    return f"failed: {status} on {verb} {plural}{where}{said}"


def describe(outcomes: list[Outcome]) -> str:
    """One line per object, e.g. "Role provider-admin: created"."""
    return "\n".join(f"{kind} {name}: {outcome}".strip() for kind, name, outcome in outcomes)
