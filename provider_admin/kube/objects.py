"""Requests on one namespaced object of a workspace (core API, v1): what the build, the
teardown and the state readers share. Never raise: a failure comes back as a status and a
reason in plain text. Each request waits at most its budget's timeout, and ends when the
budget of its whole operation runs out."""
from __future__ import annotations

import json

import urllib3.exceptions as u3

from . import errors as e
from .client import Budget, send
from .client import quote_segment as q
from .connection import Connection
from .transport import BlockedPeerError

# kind -> (plural, key in object_names); all core (v1), namespaced; teardown goes in this order.
KINDS = {"Service": ("services", "service"), "Pod": ("pods", "pod"),
         "PersistentVolumeClaim": ("persistentvolumeclaims", "pvc"),
         "ServiceAccount": ("serviceaccounts", "service_account")}

Ref = tuple[str, str]  # (kind, name)


def request(api, conn: Connection, method: str, namespace: str, ref: Ref, budget: Budget,
            body: dict | None = None) -> tuple[int | None, str, bool]:
    """(status or None, the reason of a failure, whether a failed request may have worked)."""
    (kind, name), plural = ref, KINDS[ref[0]][0]
    path = f"/api/v1/namespaces/{q(namespace)}/{plural}" + ("" if body else f"/{q(name)}")
    try:
        status, text = send(api, method, path, timeout=budget.timeout, body=body,
                            deadline=budget.deadline)
    except Exception as exc:
        found = e.classify_transport(exc, conn, budget.timeout, budget)
        return None, found[1] if found else f"The request failed: {e.snippet(exc)}", sent(exc)
    if status < 400:
        return status, "", False
    doing = f"{'create' if method == 'POST' else 'delete'} {plural} in namespace {namespace}"
    reason = e.classify_http(status, text, doing)[1]
    if status == 404 and method == "POST":
        reason += f" Check that namespace {namespace} exists (deploy the provider)."
    elif status == 422:
        reason = f"The cluster rejected the {kind} as invalid: {e.server_message(text)}"
    # 504: the API server stopped waiting, but the write may still be applied
    return status, reason, status == 504


def read(api, conn: Connection, namespace: str, ref: Ref,
         budget: Budget) -> tuple[int | None, dict | None, str]:
    """GET one object: (status or None, the object when 200, the reason of a failure)."""
    (kind, name), plural = ref, KINDS[ref[0]][0]
    try:
        status, text = send(api, "GET", f"/api/v1/namespaces/{q(namespace)}/{plural}/{q(name)}",
                            timeout=budget.timeout, deadline=budget.deadline)
    except Exception as exc:
        found = e.classify_transport(exc, conn, budget.timeout, budget)
        return None, None, found[1] if found else f"The request failed: {e.snippet(exc)}"
    if status >= 400:
        return status, None, e.classify_http(status, text, f"get {plural} in namespace {namespace}")[1]
    try:
        obj = json.loads(text)
    except ValueError:
        obj = None
    if not isinstance(obj, dict):
        return 502, None, f"The cluster's answer is not a {kind}."
    return status, obj, ""


def sent(exc: BaseException) -> bool:  # False if the request surely never reached the server
    never = (u3.NewConnectionError, u3.ConnectTimeoutError, u3.SSLError, ConnectionRefusedError,
             BlockedPeerError)
    return not any(isinstance(x, never) for x in e._chain(exc)) and "SSLError" not in str(exc)


def show(ref: Ref) -> str:
    return " ".join(ref)


def listed(refs: list[Ref]) -> str:
    return ", ".join(map(show, refs))
