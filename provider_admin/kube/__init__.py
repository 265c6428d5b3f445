"""Everything that talks to Kubernetes, behind plain values.

The app passes Connections, names and dicts in and gets dataclasses, tuples and strings
back; nothing outside this package imports the `kubernetes` client. No Flask, no models.

    conn = Connection(server="https://k8s.example:6443", namespace="ws", ca_cert=pem, token=t)
    result = check(conn, provider_name="eu-1", storage_class=None, service_account=None,
                   needs_service_accounts=False, full=True)
    objs = bootstrap_manifest(provider_name="eu-1", namespace="ws")
    outcomes = deploy(conn, objs)
"""
from .client import ClientConfigError, clear_client_cache
from .connection import (
    BLOCKED_NETWORKS,
    AddressError,
    Connection,
    KubeconfigError,
    NotInClusterError,
    check_address,
    in_cluster_connection,
    kubeconfig_contexts,
    parse_kubeconfig,
    token_expiry,
    token_expiry_phrase,
)
from .deploy import (
    ALREADY_ABSENT,
    ALREADY_PRESENT,
    CREATED,
    DELETED,
    deploy,
    describe,
    succeeded,
    undeploy,
)
from .errors import CATEGORIES
from .health import CheckResult, check
from .hints import NOTE_PREFIX as HINTS_UNAVAILABLE
from .hints import scheduling_hints
from .inventory import Names, service_accounts, storage_classes
from .manifest import bootstrap_manifest, to_yaml
from .permissions import MARKER_KEY, MARKER_NAME, Permission, required_permissions
from .workspace import (
    UID_LABEL,
    BuildResult,
    PodState,
    TeardownResult,
    WorkspaceSpec,
    object_base,
    object_names,
    pod_state,
    workspace_objects,
)
from .workspace import build as build_workspace
from .workspace import teardown as teardown_workspace

__all__ = [
    "ALREADY_ABSENT", "ALREADY_PRESENT", "AddressError", "BLOCKED_NETWORKS", "CATEGORIES", "CREATED", "DELETED",
    "HINTS_UNAVAILABLE", "MARKER_KEY", "MARKER_NAME", "UID_LABEL", "BuildResult", "PodState", "CheckResult",
    "ClientConfigError", "Connection", "KubeconfigError", "Names", "NotInClusterError", "Permission", "TeardownResult",
    "WorkspaceSpec", "bootstrap_manifest", "build_workspace", "check", "check_address", "clear_client_cache", "deploy",
    "describe", "in_cluster_connection", "kubeconfig_contexts", "object_base", "object_names", "parse_kubeconfig",
    "pod_state",
    "required_permissions", "scheduling_hints", "service_accounts", "storage_classes", "succeeded",
    "teardown_workspace", "to_yaml", "token_expiry", "token_expiry_phrase", "undeploy", "workspace_objects",
]
