"""What exists in a cluster, for suggestions in the edit form (never raises)."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from . import errors as e
from .client import get_client, quote_segment, send
from .connection import Connection

MAX_NAME = 253  # the longest Kubernetes object name


@dataclass
class Names:
    """Names found, or why they could not be listed (e.g. "forbidden")."""

    names: list[str] = field(default_factory=list)
    error: str | None = None


def cluster_names(conn: Connection, timeout: float = 5.0) -> dict[str, Names]:
    """The storage classes and the namespace's service accounts, both within `timeout`."""
    deadline = time.monotonic() + timeout
    return {"storage_class": storage_classes(conn, timeout, deadline),
            "service_account": service_accounts(conn, timeout, deadline)}


def storage_classes(conn: Connection, timeout: float = 5.0, deadline: float | None = None) -> Names:
    return _list(conn, "/apis/storage.k8s.io/v1/storageclasses", timeout, deadline)


def service_accounts(conn: Connection, timeout: float = 5.0, deadline: float | None = None) -> Names:
    return _list(conn, f"/api/v1/namespaces/{quote_segment(conn.namespace)}/serviceaccounts", timeout, deadline)


def _list(conn: Connection, path: str, timeout: float, deadline: float | None) -> Names:
    try:
        status, text = send(get_client(conn), "GET", path, timeout=timeout, deadline=deadline)
    except Exception as exc:  # a suggestion is never worth an error page
        found = e.classify_transport(exc, conn, timeout)
        return Names(error=(found[1] if found else e.snippet(exc) or type(exc).__name__).rstrip("."))
    if status == 403:
        return Names(error="the stored credentials may not list these")
    if status != 200:
        return Names(error=f"the cluster answered {status}")
    try:
        items = json.loads(text).get("items") or []
    except (ValueError, AttributeError):
        return Names(error="the cluster's answer was not a list")
    names = (str((i.get("metadata") or {}).get("name", "")) for i in items if isinstance(i, dict))
    # A name a real cluster cannot have (too long, several lines) is no suggestion to offer.
    return Names(names=sorted(n for n in names if n and n == e.snippet(n, MAX_NAME)))
