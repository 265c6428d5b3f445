"""Deploy converges only the objects it owns; removal deletes only what Deploy created; the
marker holds the provider's uid (against the Kubernetes API emulator, over HTTP)."""
import pytest

from provider_admin.kube import (
    ALREADY_ABSENT,
    COULD_NOT,
    COULD_NOT_REMOVE,
    CREATED,
    LEFT_ALONE,
    NAMESPACE_USED,
    NOT_TRIED,
    REMOVED,
    PROVIDER_UID_LABEL as UID_LABEL,
    UNCHANGED,
    UPDATED,
    Ref,
    bootstrap_manifest,
    by_hand,
    check,
    deploy,
    remove_bootstrap,
)
from provider_admin.kube.health import STALE_BOOTSTRAP
from tests.kube import kube_api, provider_uid  # noqa: F401

UID = provider_uid("p1")
ROLES = "rbac.authorization.k8s.io/v1/roles"
MANAGED = {"app.kubernetes.io/managed-by": "provider-admin"}


def apply(api, name="p1", uid=UID, **kwargs):
    """Deploy provider `name` to namespace ws; {(kind, name): result}."""
    objs = bootstrap_manifest(provider_name=name, namespace="ws", provider_uid=uid, **kwargs)
    outcomes = deploy(api.connection(), objs, provider_uid=uid, provider_name=name)
    return {(o.kind, o.name): o.result for o in outcomes}


def created_refs(api, **kwargs) -> list[Ref]:
    objs = bootstrap_manifest(provider_name="p1", namespace="ws", provider_uid=UID, **kwargs)
    outcomes = deploy(api.connection(), objs, provider_uid=UID, provider_name="p1")
    return [Ref(o.kind, o.namespace, o.name) for o in outcomes if o.result == CREATED]


def run_check(api, name="p1", uid=UID, **kwargs):
    return check(api.connection(), provider_name=name, provider_uid=uid, **kwargs)


# Deploy ------------------------------------------------------------------------------------
def test_annotations_added_later_update_the_role_and_the_marker_only(kube_api):
    apply(kube_api, needs_service_accounts=False)
    assert "serviceaccounts" not in str(kube_api.get(ROLES, "ws", "provider-admin")["rules"])
    assert run_check(kube_api, needs_service_accounts=True).warnings == [
        f"{STALE_BOOTSTRAP} (its Role does not grant create serviceaccounts, get serviceaccounts, "
        "patch serviceaccounts, delete serviceaccounts)."]

    results = apply(kube_api, needs_service_accounts=True)

    assert results.pop(("Role", "provider-admin")) == UPDATED
    assert results.pop(("ConfigMap", "provider-admin-marker")) == UPDATED
    assert set(results.values()) == {UNCHANGED}
    rules = kube_api.get(ROLES, "ws", "provider-admin")["rules"]
    assert {"apiGroups": [""], "resources": ["serviceaccounts"],
            "verbs": ["create", "get", "patch", "delete"]} in rules
    assert any(r.startswith("PATCH /apis/rbac.authorization.k8s.io/v1/namespaces/ws/roles/")
               for r in kube_api.requests)
    assert run_check(kube_api, needs_service_accounts=True).warnings == []


def test_a_rename_updates_the_names_it_wrote_and_stays_ready(kube_api):
    apply(kube_api, name="p1")
    assert run_check(kube_api, name="renamed").ok  # the uid decides, not the name

    results = apply(kube_api, name="renamed")

    assert results[("Namespace", "ws")] == UPDATED  # its provider annotation
    assert results[("ConfigMap", "provider-admin-marker")] == UPDATED
    assert results[("Role", "provider-admin")] == UNCHANGED
    assert kube_api.get("v1/configmaps", "ws", "provider-admin-marker")["data"]["provider"] == "renamed"


def test_what_others_made_is_left_alone_and_a_namespace_is_used_as_it_is(kube_api):
    kube_api.put("v1/namespaces", None, "ws", {"kind": "Namespace"})
    foreign = {"kind": "ServiceAccount", "metadata": {"name": "provider-admin", "namespace": "ws",
                                                      "labels": {"team": "data"}}}
    kube_api.put("v1/serviceaccounts", "ws", "provider-admin", foreign)

    results = apply(kube_api)
    again = apply(kube_api)

    assert results[("Namespace", "ws")] == NAMESPACE_USED
    assert results[("ServiceAccount", "provider-admin")] == LEFT_ALONE
    assert results[("Role", "provider-admin")] == CREATED
    assert again[("ServiceAccount", "provider-admin")] == LEFT_ALONE
    assert kube_api.get("v1/serviceaccounts", "ws", "provider-admin")["metadata"]["labels"] \
        == {"team": "data"}
    assert "labels" not in kube_api.get("v1/namespaces", None, "ws")["metadata"]
    assert not any(r.startswith(("PATCH", "DELETE")) for r in kube_api.requests)


def test_another_providers_marker_is_left_alone_and_still_conflicts(kube_api):
    kube_api.deploy_marker("west")

    results = apply(kube_api)

    assert results[("ConfigMap", "provider-admin-marker")] == LEFT_ALONE
    assert kube_api.get("v1/configmaps", "ws", "provider-admin-marker")["data"]["provider"] == "west"
    result = run_check(kube_api)
    assert result.category == "marker_conflict"
    assert "Namespace ws is already used by provider west" in result.message
    assert "before a rename" not in result.message  # its marker records another provider's id


def test_a_changed_role_ref_recreates_the_binding(kube_api):
    apply(kube_api)
    binding = kube_api.get("rbac.authorization.k8s.io/v1/rolebindings", "ws", "provider-admin")
    binding["roleRef"] = {**binding["roleRef"], "name": "someone-elses"}
    kube_api.put("rbac.authorization.k8s.io/v1/rolebindings", "ws", "provider-admin", binding)

    results = apply(kube_api)

    assert results[("RoleBinding", "provider-admin")] == f"{UPDATED} (recreated: its roleRef changed)"
    assert kube_api.get("rbac.authorization.k8s.io/v1/rolebindings", "ws",
                        "provider-admin")["roleRef"]["name"] == "provider-admin"


def test_a_refused_update_says_what_it_could_not_touch(kube_api):
    apply(kube_api, needs_service_accounts=False)
    kube_api.respond("patch /apis/rbac.authorization.k8s.io/v1/namespaces/ws/roles/provider-admin",
                     403, "roles is forbidden")

    results = apply(kube_api, needs_service_accounts=True)

    assert results[("Role", "provider-admin")] == (
        COULD_NOT + "forbidden: the stored credentials may not patch roles in namespace ws; "
        "apply the bootstrap manifest with kubectl as a cluster admin instead")
    assert results[("ConfigMap", "provider-admin-marker")] == NOT_TRIED  # it stays as it was
    assert "create serviceaccounts" not in kube_api.get("v1/configmaps", "ws",
                                                        "provider-admin-marker")["data"]["grants"]


def test_a_marker_from_before_uids_is_adopted_with_what_its_deploy_made(kube_api):
    kube_api.deploy_marker("p1", legacy=True)
    kube_api.put(ROLES, "ws", "provider-admin",
                 {"kind": "Role", "metadata": {"name": "provider-admin", "namespace": "ws",
                                               "labels": dict(MANAGED)}, "rules": []})
    result = run_check(kube_api)
    assert result.ok and result.warnings == [
        f"{STALE_BOOTSTRAP} (its marker does not record this provider's id yet, so a rename "
        "would lose the namespace)."]

    results = apply(kube_api)

    assert results[("Role", "provider-admin")] == UPDATED
    assert results[("ConfigMap", "provider-admin-marker")] == UPDATED
    assert results[("Namespace", "ws")] == NAMESPACE_USED  # no Provider Admin label on it
    assert kube_api.get(ROLES, "ws", "provider-admin")["metadata"]["labels"][UID_LABEL] == UID
    assert kube_api.get("v1/configmaps", "ws", "provider-admin-marker")["data"]["provider-uid"] == UID
    assert run_check(kube_api, name="renamed").ok


def test_a_marker_from_before_uids_naming_another_provider_conflicts(kube_api):
    kube_api.deploy_marker("west", legacy=True)

    assert apply(kube_api)[("ConfigMap", "provider-admin-marker")] == LEFT_ALONE
    message = run_check(kube_api).message
    assert "already used by provider west" in message
    assert ("If west was this provider's name before a rename, rename it back and press Deploy"
            in message)


# Removal -----------------------------------------------------------------------------------
def test_removal_deletes_exactly_what_deploy_created(kube_api):
    kube_api.put("v1/namespaces", None, "ws", {"kind": "Namespace"})
    kube_api.put("v1/serviceaccounts", "ws", "provider-admin", {"kind": "ServiceAccount"})
    refs = created_refs(kube_api)
    assert {r.kind for r in refs} == {"Secret", "Role", "RoleBinding", "ClusterRole",
                                      "ClusterRoleBinding", "ConfigMap"}

    outcomes = remove_bootstrap(kube_api.connection(), refs, provider_uid=UID)

    assert [o.kind for o in outcomes] == ["ConfigMap", "ClusterRoleBinding", "ClusterRole",
                                          "RoleBinding", "Role", "Secret"]
    assert {o.result for o in outcomes} == {REMOVED}
    assert kube_api.get(ROLES, "ws", "provider-admin") is None
    assert kube_api.get("v1/namespaces", None, "ws") is not None
    assert kube_api.get("v1/serviceaccounts", "ws", "provider-admin") is not None
    again = remove_bootstrap(kube_api.connection(), refs, provider_uid=UID)
    assert {o.result for o in again} == {ALREADY_ABSENT}


def test_a_namespace_deploy_created_goes_when_it_holds_nothing_else(kube_api):
    kube_api.put("v1/serviceaccounts", "ws", "default", {"kind": "ServiceAccount"})  # Kubernetes'
    refs = created_refs(kube_api)

    outcomes = remove_bootstrap(kube_api.connection(), refs, provider_uid=UID)

    assert outcomes[-1].kind == "Namespace" and outcomes[-1].result == REMOVED
    assert kube_api.get("v1/namespaces", None, "ws") is None


def test_a_namespace_holding_someone_elses_pod_stays_with_the_reason(kube_api):
    refs = created_refs(kube_api)
    kube_api.put("v1/pods", "ws", "notebook", {"kind": "Pod"})
    kube_api.put("v1/configmaps", "ws", "settings", {"kind": "ConfigMap"})
    kube_api.put("v1/secrets", "ws", "db", {"kind": "Secret"})

    outcomes = remove_bootstrap(kube_api.connection(), refs, provider_uid=UID)

    assert outcomes[-1].result == ("left: it holds objects that are not this provider's "
                                   "(Pod notebook, ConfigMap settings and 1 more)")
    assert kube_api.get("v1/namespaces", None, "ws") is not None
    assert kube_api.get("v1/pods", "ws", "notebook") is not None
    assert {o.result for o in outcomes[:-1]} == {REMOVED}


def test_an_object_that_lost_the_uid_is_left(kube_api):
    refs = created_refs(kube_api)
    kube_api.put(ROLES, "ws", "provider-admin", {"kind": "Role", "rules": []})  # replaced by someone

    outcomes = {o.kind: o.result for o in remove_bootstrap(kube_api.connection(), refs,
                                                           provider_uid=UID)}

    assert outcomes["Role"] == "left: it no longer carries this provider's id"
    assert kube_api.get(ROLES, "ws", "provider-admin") is not None
    assert outcomes["Namespace"].startswith("left: it holds objects that are not this provider's "
                                            "(Role provider-admin")


def test_an_unreachable_cluster_gives_the_commands_to_run_by_hand(kube_api):
    refs = [Ref("Role", "ws", "provider-admin"), Ref("Namespace", "", "ws"),
            Ref("ClusterRole", "", "provider-admin-ws")]
    conn = kube_api.connection()
    kube_api.stop()

    outcomes = remove_bootstrap(conn, refs, provider_uid=UID, timeout=1)

    assert [o.kind for o in outcomes] == ["ClusterRole", "Role", "Namespace"]
    assert all(o.result.startswith(COULD_NOT_REMOVE) and "was refused" in o.result
               for o in outcomes)
    assert by_hand(outcomes) == [
        "kubectl delete clusterrole provider-admin-ws",
        "kubectl delete role provider-admin -n ws",
        "kubectl delete namespace ws  # only if `kubectl get all,pvc,configmaps,secrets -n ws` "
        "lists nothing else",
    ]


@pytest.mark.parametrize("verb", ["get", "delete"])
def test_a_refused_removal_says_why(kube_api, verb):
    refs = created_refs(kube_api)
    kube_api.respond(f"{verb} /apis/rbac.authorization.k8s.io/v1/namespaces/ws/roles/provider-admin",
                     403, "no")

    outcomes = {o.kind: o.result for o in remove_bootstrap(kube_api.connection(), refs,
                                                           provider_uid=UID)}

    assert outcomes["Role"] == (COULD_NOT_REMOVE + f"forbidden: the stored credentials may not "
                                f"{verb} roles in namespace ws; remove it with kubectl as a "
                                "cluster admin instead")
    assert kube_api.get(ROLES, "ws", "provider-admin") is not None
