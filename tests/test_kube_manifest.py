"""The bootstrap manifest and applying it to a cluster with Deploy."""
import kubernetes_validate
import pytest
import yaml

from provider_admin.kube import (
    ALREADY_ABSENT,
    COULD_NOT,
    CREATED,
    DELETED,
    NOT_TRIED,
    PROVIDER_UID_LABEL as UID_LABEL,
    UNCHANGED,
    Outcome,
    bootstrap_manifest,
    check,
    deploy,
    describe,
    succeeded,
    to_yaml,
    undeploy,
)
from tests.kube import kube_api, kube_target, provider_uid  # noqa: F401

UID = provider_uid("p1")

KUBE_SCHEMA_VERSION = kubernetes_validate.latest_version()
ALL_KINDS = ["Namespace", "ServiceAccount", "Secret", "Role", "RoleBinding", "ClusterRole",
             "ClusterRoleBinding", "ConfigMap"]


def by_kind(objs: list[dict]) -> dict[str, dict]:
    return {obj["kind"]: obj for obj in objs}


@pytest.mark.parametrize("include_cluster_role", [True, False])
@pytest.mark.parametrize("needs_service_accounts", [True, False])
def test_every_object_is_valid_kubernetes(include_cluster_role, needs_service_accounts):
    objs = bootstrap_manifest(provider_name="Europe 1 — GPU", namespace="ws",
                              include_cluster_role=include_cluster_role,
                              needs_service_accounts=needs_service_accounts)

    for obj in objs:
        kubernetes_validate.validate(obj, KUBE_SCHEMA_VERSION, strict=True)
    assert KUBE_SCHEMA_VERSION >= "1.33"


def test_objects_in_apply_order_with_the_marker_last():
    objs = bootstrap_manifest(provider_name="p1", namespace="ws")

    assert [o["kind"] for o in objs] == ALL_KINDS
    assert all(o["metadata"].get("namespace") == "ws" for o in objs
               if o["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"))
    assert all(o["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "provider-admin"}
               for o in objs)


def test_cluster_role_is_optional():
    objs = bootstrap_manifest(provider_name="p1", namespace="ws", include_cluster_role=False)

    assert [o["kind"] for o in objs] == [k for k in ALL_KINDS if not k.startswith("Cluster")]


def test_role_grants_exactly_the_needed_permissions():
    role = by_kind(bootstrap_manifest(provider_name="p1", namespace="ws"))["Role"]
    without_sa = by_kind(bootstrap_manifest(provider_name="p1", namespace="ws",
                                            needs_service_accounts=False))["Role"]

    workload = {"apiGroups": [""], "resources": ["pods", "persistentvolumeclaims"],
                "verbs": ["create", "get", "list", "delete"]}
    configmaps = {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}
    events = {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]}
    service_accounts = {"apiGroups": [""], "resources": ["serviceaccounts"],
                        "verbs": ["create", "get", "patch", "delete"]}
    assert role["rules"] == [workload, configmaps, events, service_accounts]
    assert without_sa["rules"] == [workload, configmaps, events]


def test_bindings_token_secret_and_marker_refer_to_each_other():
    objs = by_kind(bootstrap_manifest(provider_name="p1", namespace="ws",
                                      service_account_name="pa"))
    subject = [{"kind": "ServiceAccount", "name": "pa", "namespace": "ws"}]

    assert objs["ServiceAccount"]["metadata"]["name"] == "pa"
    assert objs["RoleBinding"]["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io",
                                              "kind": "Role", "name": "pa"}
    assert objs["RoleBinding"]["subjects"] == subject
    assert objs["ClusterRoleBinding"]["subjects"] == subject
    assert objs["ClusterRole"]["metadata"]["name"] == "pa-ws"
    assert objs["ClusterRoleBinding"]["roleRef"]["name"] == "pa-ws"
    assert objs["ClusterRole"]["rules"] == [
        {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]},
    ]
    assert objs["Secret"]["type"] == "kubernetes.io/service-account-token"
    assert objs["Secret"]["metadata"]["annotations"] == {"kubernetes.io/service-account.name": "pa"}
    assert objs["ConfigMap"]["metadata"]["name"] == "provider-admin-marker"
    assert objs["ConfigMap"]["data"] == {"provider": "p1"}


def test_yaml_is_multi_document_and_round_trips():
    objs = bootstrap_manifest(provider_name="Zürich <1>", namespace="ws")

    text = to_yaml(objs)

    assert text.startswith("---\n") and text.count("\n---\n") == len(objs) - 1
    assert list(yaml.safe_load_all(text)) == objs
    assert "Zürich <1>" in text


@pytest.mark.parametrize("kwargs", [
    {"namespace": "Bad_Namespace"},
    {"namespace": "ws", "service_account_name": "a" * 64},
    {"namespace": "ws", "provider_name": ""},
])
def test_invalid_names_are_refused(kwargs):
    with pytest.raises(ValueError):
        bootstrap_manifest(**{"provider_name": "p1", **kwargs})


def test_with_a_uid_every_object_carries_it_and_the_marker_records_it():
    objs = bootstrap_manifest(provider_name="p1", namespace="ws", provider_uid=UID,
                              needs_service_accounts=False)

    assert all(o["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "provider-admin",
                                           UID_LABEL: UID} for o in objs)
    marker = by_kind(objs)["ConfigMap"]["data"]
    assert (marker["provider"], marker["provider-uid"]) == ("p1", UID)
    assert marker["grants"].splitlines()[:2] == ["create pods", "get pods"]
    assert "create serviceaccounts" not in marker["grants"]
    for obj in objs:
        kubernetes_validate.validate(obj, KUBE_SCHEMA_VERSION, strict=True)


def test_deploy_creates_everything_then_finds_it_unchanged(kube_target):
    conn = kube_target.connection()
    objs = bootstrap_manifest(provider_name="p1", namespace=conn.namespace, provider_uid=UID)
    names = [(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace", "")) for o in objs]

    first = deploy(conn, objs, provider_uid=UID, provider_name="p1")
    second = deploy(conn, objs, provider_uid=UID, provider_name="p1")

    assert first == [Outcome(kind, name, CREATED, ns) for kind, name, ns in names]
    assert second == [Outcome(kind, name, UNCHANGED, ns) for kind, name, ns in names]
    assert succeeded(first) and succeeded(second)
    assert describe(first).splitlines()[:2] == [f"Namespace {conn.namespace}: created",
                                                f"ServiceAccount provider-admin in namespace "
                                                f"{conn.namespace}: created"]
    assert check(conn, provider_name="p1", provider_uid=UID, full=True).category == "ready"


def test_deployed_objects_are_stored_as_sent(kube_api):
    objs = bootstrap_manifest(provider_name="p1", namespace="ws", provider_uid=UID)

    deploy(kube_api.connection(), objs, provider_uid=UID, provider_name="p1")

    assert kube_api.get("v1/configmaps", "ws", "provider-admin-marker")["data"] \
        == by_kind(objs)["ConfigMap"]["data"]
    assert kube_api.get("rbac.authorization.k8s.io/v1/roles", "ws", "provider-admin")["rules"] \
        == by_kind(objs)["Role"]["rules"]
    assert kube_api.get("v1/namespaces", None, "ws")["kind"] == "Namespace"
    assert "POST /apis/rbac.authorization.k8s.io/v1/clusterroles" in kube_api.requests


def test_deploy_stops_at_forbidden_with_a_clear_message(kube_api):
    kube_api.respond("post /apis/rbac.authorization.k8s.io/v1/namespaces/ws/roles", 403,
                     'roles.rbac.authorization.k8s.io is forbidden')
    objs = bootstrap_manifest(provider_name="p1", namespace="ws", provider_uid=UID)

    outcomes = deploy(kube_api.connection(), objs, provider_uid=UID, provider_name="p1")

    assert [o.result for o in outcomes[:3]] == [CREATED] * 3
    assert outcomes[3] == Outcome("Role", "provider-admin", COULD_NOT +
                                  "forbidden: the stored credentials may not create roles in "
                                  "namespace ws; apply the bootstrap manifest with kubectl as a "
                                  "cluster admin instead", "ws")
    assert {o.result for o in outcomes[4:]} == {NOT_TRIED} and len(outcomes) == len(objs)
    assert not succeeded(outcomes)
    assert not any("rolebindings" in r for r in kube_api.requests)


def test_deploy_stops_at_unauthorized(kube_api):
    kube_api.respond("post /api/v1/namespaces", 401, "Unauthorized")

    outcomes = deploy(kube_api.connection(), bootstrap_manifest(provider_name="p1", namespace="ws"),
                      provider_uid=UID, provider_name="p1")

    assert outcomes[0] == Outcome("Namespace", "ws", COULD_NOT + "unauthorized: the cluster "
                                  "rejected the stored credentials (Unauthorized); update the "
                                  "provider's token")
    assert {o.result for o in outcomes[1:]} == {NOT_TRIED}


def test_deploy_to_a_dead_cluster_says_why(kube_api):
    conn = kube_api.connection()
    kube_api.stop()

    outcomes = deploy(conn, bootstrap_manifest(provider_name="p1", namespace="ws"),
                      provider_uid=UID, provider_name="p1", timeout=1)

    assert outcomes[0].kind == "Namespace"
    assert outcomes[0].result.startswith(COULD_NOT) and "was refused" in outcomes[0].result
    assert [o.result for o in outcomes[1:]] == [NOT_TRIED] * 7


def test_undeploy_removes_in_reverse_order(kube_api):
    conn = kube_api.connection()
    objs = bootstrap_manifest(provider_name="p1", namespace="ws", provider_uid=UID)
    deploy(conn, objs, provider_uid=UID, provider_name="p1")

    removed = undeploy(conn, objs)
    again = undeploy(conn, objs)

    assert [o[0] for o in removed] == list(reversed(ALL_KINDS))
    assert {o.result for o in removed} == {DELETED}
    assert {o.result for o in again} == {ALREADY_ABSENT}
    assert kube_api.get("v1/configmaps", "ws", "provider-admin-marker") is None
    assert check(conn, provider_name="p1", provider_uid=UID).category == "not_deployed"
