"""A provider's Kubernetes connection, with its credentials decrypted, for any caller that
talks to its cluster (checks, deploy, hints, workspace builds)."""
import dataclasses
import json

from flask import current_app

from .. import crypto, kube
from ..models import Provider


def connection_for(provider: Provider) -> kube.Connection:
    """The provider's connection with its credentials decrypted (never leaves the server).

    `provider` may also be a row with the same column names, such as a claim returns.
    """
    blocked = () if current_app.config["ALLOW_LINK_LOCAL_CLUSTERS"] else kube.BLOCKED_NETWORKS
    if provider.is_builtin:
        conn = kube.in_cluster_connection(namespace=provider.namespace)
        return dataclasses.replace(conn, blocked_networks=blocked)
    secret = json.loads(crypto.decrypt(provider.credentials_encrypted) or "{}")
    return kube.Connection(
        server=provider.cluster_address or "",
        namespace=provider.namespace,
        ca_cert=provider.ca_cert,
        token=secret.get("token"),
        client_cert=secret.get("client_cert"),
        client_key=secret.get("client_key"),
        blocked_networks=blocked,
    )


def limits() -> dict[str, float]:
    """The `timeout` of each request to a cluster and the `budget` of a whole operation (a
    Deploy, a removal, a step of a workspace build), as the kube functions take them."""
    return {"timeout": float(current_app.config["CHECK_TIMEOUT"]),
            "budget": float(current_app.config["OPERATION_TIMEOUT"])}
