"""External SSH: the LoadBalancer Service that exposes one workspace's SSH port outside the
cluster, and the external address its load balancer reports. Plain dicts in and out."""
from __future__ import annotations

from . import errors as e

SSH_PORT = 22  # the port the workspace container's SSH server listens on
WAITING = "waiting for an external address: the cluster's load balancer has not reported one yet"


def service_spec(selector: dict[str, str]) -> dict:
    """The spec of the Service: type LoadBalancer, TCP port 22 to the pod's port 22, selecting
    only the pod that carries `selector` (the workspace's uid label)."""
    return {"type": "LoadBalancer", "selector": dict(selector),
            "ports": [{"name": "ssh", "protocol": "TCP", "port": SSH_PORT, "targetPort": SSH_PORT}]}


def external_address(service: dict) -> str | None:
    """"host:port" from the Service's status once its load balancer has an address, else None."""
    ingress = (((service or {}).get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    for entry in ingress:
        host = isinstance(entry, dict) and (entry.get("hostname") or entry.get("ip"))
        if host and isinstance(host, str):
            return f"{e.snippet(host, 253)}:{SSH_PORT}"
    return None
