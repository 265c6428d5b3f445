"""Everything that talks to Kubernetes, behind plain values.

The app passes Connections, names and dicts in and gets dataclasses, tuples and strings
back; nothing outside this package imports the `kubernetes` client. No Flask, no models.
It imports nothing from the rest of the app (tests/test_layout.py holds it to that), so
Kubernetes' own rules live here too, for the forms and the builds alike: names (`names`),
the scheduling shapes (`scheduling`) and the annotation templates (`annotations`).

    conn = Connection(server="https://k8s.example:6443", namespace="ws", ca_cert=pem, token=t)
    result = check(conn, provider_name="eu-1", storage_class=None, service_account=None,
                   needs_service_accounts=False, needs_services=False, full=True)
    objs = bootstrap_manifest(provider_name="eu-1", namespace="ws", provider_uid=uid,
                              needs_services=True)
    outcomes = deploy(conn, objs, provider_uid=uid, provider_name="eu-1")
    removed = remove_bootstrap(conn, [Ref("Role", "ws", "provider-admin")], provider_uid=uid)
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
    COULD_NOT,
    CREATED,
    DELETED,
    LEFT_ALONE,
    NAMESPACE_USED,
    NOT_TRIED,
    UNCHANGED,
    UPDATED,
    Outcome,
    deploy,
    describe,
    succeeded,
    undeploy,
)
from .errors import CATEGORIES
from .health import CheckResult, check
from .hints import NOTE_PREFIX as HINTS_UNAVAILABLE
from .hints import scheduling_hints
from .inventory import Names, cluster_names, service_accounts, storage_classes
from .manifest import bootstrap_manifest, to_yaml
from .permissions import MARKER_KEY, MARKER_NAME, Permission, required_permissions
from .permissions import UID_LABEL as PROVIDER_UID_LABEL
from .removal import COULD_NOT_REMOVE, REMOVED, Ref, by_hand, remove_bootstrap
from .state import PodState, pod_state, ssh_address
from .workspace import UID_LABEL as WORKSPACE_UID_LABEL
from .workspace import (
    BuildResult,
    TeardownResult,
    WorkspaceSpec,
    object_base,
    object_names,
    workspace_objects,
)
from .workspace import build as build_workspace
from .workspace import rebuild as rebuild_workspace
from .workspace import teardown as teardown_workspace

__all__ = [
    "ALREADY_ABSENT", "AddressError", "BLOCKED_NETWORKS", "CATEGORIES", "COULD_NOT", "COULD_NOT_REMOVE", "CREATED",
    "DELETED", "HINTS_UNAVAILABLE", "LEFT_ALONE", "MARKER_KEY", "MARKER_NAME", "NAMESPACE_USED", "NOT_TRIED",
    "PROVIDER_UID_LABEL", "REMOVED", "UNCHANGED", "UPDATED", "WORKSPACE_UID_LABEL", "BuildResult", "CheckResult",
    "ClientConfigError", "Connection", "KubeconfigError", "Names", "NotInClusterError", "Outcome", "Permission",
    "PodState", "Ref", "TeardownResult", "WorkspaceSpec", "bootstrap_manifest", "build_workspace", "by_hand", "check",
    "check_address", "clear_client_cache", "cluster_names", "deploy", "describe", "in_cluster_connection", "kubeconfig_contexts",
    "object_base", "object_names", "parse_kubeconfig", "pod_state", "rebuild_workspace", "remove_bootstrap", "required_permissions",
    "scheduling_hints", "service_accounts", "ssh_address", "storage_classes", "succeeded", "teardown_workspace", "to_yaml",
    "token_expiry", "token_expiry_phrase", "undeploy", "workspace_objects",
]
