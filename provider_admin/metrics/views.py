import hmac
import ipaddress

from flask import Response, current_app, request
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest

from . import bp, process
from .database import DatabaseCollector


@bp.get("/metrics")
def metrics():
    """Prometheus' text format, for the addresses in METRICS_ALLOW or a bearer METRICS_TOKEN."""
    if not _allowed():
        return Response("Metrics are read by the addresses in PROVIDER_ADMIN_METRICS_ALLOW or with "
                        "PROVIDER_ADMIN_METRICS_TOKEN as a bearer token.\n", 403, mimetype="text/plain")
    registry = CollectorRegistry()
    process.collectors(registry)
    registry.register(DatabaseCollector())
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_PLAIN_0_0_4)  # what every Prometheus reads


def _allowed() -> bool:
    token = current_app.config["METRICS_TOKEN"]
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(sent.strip().encode(), str(token).encode()):
        return True
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    address = getattr(address, "ipv4_mapped", None) or address  # ::ffff:127.0.0.1 from a dual-stack socket
    return any(address in network for network in current_app.extensions["metrics_allow"])
