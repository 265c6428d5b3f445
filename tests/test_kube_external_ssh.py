"""External SSH: a LoadBalancer Service per workspace, its external address, its removal, the
rebuild that keeps the home volume, and the bootstrap's services grant (against the
Kubernetes API emulator, over HTTP)."""
import kubernetes_validate
import pytest

from provider_admin.kube import (
    WORKSPACE_UID_LABEL as UID_LABEL,
    bootstrap_manifest,
    build_workspace,
    check,
    deploy,
    object_names,
    rebuild_workspace,
    required_permissions,
    ssh_address,
    teardown_workspace,
    workspace_objects,
)
from provider_admin.kube.health import STALE_BOOTSTRAP
from provider_admin.kube.services import WAITING
from tests.kube import kube_api, provider_uid  # noqa: F401
from tests.test_kube_workspace import PLAIN, Recorder, make_spec

SSH = dict(PLAIN, external_ssh=True)
SERVICES = "v1/services"
ROLES = "rbac.authorization.k8s.io/v1/roles"
PROVIDER_UID = provider_uid("p1")


def service_of(api, spec):
    return api.get(SERVICES, "ws", object_names(spec)["service"])


def built(api, spec):
    log = Recorder()
    result = build_workspace(api.connection(), spec, log)
    assert result.ok, (result.message, log)
    return log


# --- The Service ---------------------------------------------------------------------------

def test_the_service_exposes_the_pods_ssh_port_with_the_workspaces_labels(kube_api):
    spec = make_spec(**SSH)
    log = built(kube_api, spec)

    service = service_of(kube_api, spec)
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["selector"] == {UID_LABEL: spec.uid}
    assert service["spec"]["ports"] == [{"name": "ssh", "protocol": "TCP", "port": 22, "targetPort": 22}]
    assert service["metadata"]["labels"] == {"com.coder.resource": "true", UID_LABEL: spec.uid,
                                             "app.kubernetes.io/managed-by": "provider-admin"}
    pod = kube_api.get("v1/pods", "ws", object_names(spec)["pod"])
    assert all(pod["metadata"]["labels"][k] == v for k, v in service["spec"]["selector"].items())
    assert f"Created Service {object_names(spec)['service']} (type LoadBalancer, exposing SSH on port 22 " \
           "outside the cluster)" in log
    kubernetes_validate.validate(service, kubernetes_validate.latest_version(), strict=True)


def test_without_external_ssh_there_is_no_service(kube_api):
    spec = make_spec(**PLAIN)
    built(kube_api, spec)
    assert [o["kind"] for o in workspace_objects(spec)] == ["PersistentVolumeClaim", "Pod"]
    assert service_of(kube_api, spec) is None
    assert not any("/services" in r for r in kube_api.requests if r.startswith("POST"))


def test_teardown_removes_the_service(kube_api):
    spec = make_spec(**SSH)
    built(kube_api, spec)
    log = Recorder()
    result = teardown_workspace(kube_api.connection(), spec, log)
    assert result.ok, result.message
    assert service_of(kube_api, spec) is None
    assert f"Deleted Service {object_names(spec)['service']}" in log
    assert kube_api.get("v1/pods", "ws", object_names(spec)["pod"]) is None


def test_a_service_left_from_when_ssh_was_on_is_removed_too(kube_api):
    built(kube_api, make_spec(**SSH))
    spec = make_spec(**PLAIN)  # turned off since: the Service is optional, but still its own
    assert teardown_workspace(kube_api.connection(), spec, Recorder()).ok
    assert service_of(kube_api, spec) is None


def test_a_service_that_is_not_this_workspaces_stops_the_build_by_name(kube_api):
    spec = make_spec(**SSH)
    name = object_names(spec)["service"]
    kube_api.put(SERVICES, "ws", name, {"kind": "Service", "metadata": {
        "name": name, "namespace": "ws", "labels": {UID_LABEL: "someone-else"}}})
    log = Recorder()

    result = build_workspace(kube_api.connection(), spec, log)

    assert not result.ok
    assert f"Service {name} already exists and belongs to something else" in result.message
    assert kube_api.get("v1/pods", "ws", object_names(spec)["pod"]) is None  # undone
    assert service_of(kube_api, spec)["metadata"]["labels"] == {UID_LABEL: "someone-else"}
    left = teardown_workspace(kube_api.connection(), spec, Recorder())
    assert ("Service", name) in left.left and service_of(kube_api, spec) is not None


def test_the_external_address_once_the_load_balancer_reports_one(kube_api):
    spec = make_spec(**SSH)
    built(kube_api, spec)
    assert ssh_address(kube_api.connection(), spec) == (None, WAITING)

    service = service_of(kube_api, spec)
    service["status"] = {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}
    kube_api.put(SERVICES, "ws", service["metadata"]["name"], service)
    assert ssh_address(kube_api.connection(), spec) == ("203.0.113.7:22", "")

    service["status"] = {"loadBalancer": {"ingress": [{"hostname": "ssh.example.com"}]}}
    kube_api.put(SERVICES, "ws", service["metadata"]["name"], service)
    assert ssh_address(kube_api.connection(), spec) == ("ssh.example.com:22", "")


def test_the_address_of_a_missing_or_foreign_service_is_explained(kube_api):
    spec = make_spec(**SSH)
    address, said = ssh_address(kube_api.connection(), spec)
    assert address is None and "is not in namespace ws" in said
    kube_api.put(SERVICES, "ws", object_names(spec)["service"], {"kind": "Service", "status": {
        "loadBalancer": {"ingress": [{"ip": "198.51.100.1"}]}}})
    address, said = ssh_address(kube_api.connection(), spec)
    assert address is None and "is not this workspace's" in said


# --- Rebuild -------------------------------------------------------------------------------

def test_a_rebuild_keeps_the_home_volume_and_recreates_the_pod_with_new_settings(kube_api):
    old = make_spec(**PLAIN)
    built(kube_api, old)
    names = object_names(old)
    home = kube_api.get("v1/persistentvolumeclaims", "ws", names["pvc"])
    home["metadata"]["annotations"] = {"data": "kept"}  # a mark the rebuild must not lose
    kube_api.put("v1/persistentvolumeclaims", "ws", names["pvc"], home)
    new = make_spec(**dict(SSH, access_url="https://new.example.com", e2e_encryption=False,
                           node_selector={"pool": "b"}))
    log = Recorder()

    result = rebuild_workspace(kube_api.connection(), new, log)

    assert result.ok, (result.message, log)
    assert kube_api.get("v1/persistentvolumeclaims", "ws", names["pvc"])["metadata"]["annotations"] == {
        "data": "kept"}
    assert ("PersistentVolumeClaim", names["pvc"]) not in result.created
    assert not any(r.startswith("DELETE") and "persistentvolumeclaims" in r for r in kube_api.requests)
    pod = kube_api.get("v1/pods", "ws", names["pod"])
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert env["CODER_ACCESS_URL"] == "https://new.example.com"
    assert env["CODER_E2E_ENCRYPTION"] == "false" and env["CODER_EXTERNAL_SSH"] == "true"
    assert pod["spec"]["nodeSelector"] == {"pool": "b"}
    assert service_of(kube_api, new) is not None
    assert f"Deleted Pod {names['pod']}" in log


def test_a_rebuild_keeps_the_ssh_service_while_ssh_stays_on_and_removes_it_when_off(kube_api):
    spec = make_spec(**SSH)
    built(kube_api, spec)
    assert rebuild_workspace(kube_api.connection(), spec, Recorder()).ok
    assert not any(r.startswith("DELETE") and "/services/" in r for r in kube_api.requests)

    off = make_spec(**PLAIN)
    assert rebuild_workspace(kube_api.connection(), off, Recorder()).ok
    assert service_of(kube_api, off) is None


def test_a_rebuild_waits_for_the_old_pod_to_terminate(kube_api):
    spec = make_spec(**PLAIN)
    built(kube_api, spec)
    pod_path = f"/api/v1/namespaces/ws/pods/{object_names(spec)['pod']}"
    kube_api.refuse("DELETE", pod_path, 500, "etcd is slow")

    result = rebuild_workspace(kube_api.connection(), spec, Recorder(), wait=0.5)

    assert not result.ok
    assert result.message.startswith("Rebuild stopped before building: Could not delete everything")
    assert kube_api.get("v1/persistentvolumeclaims", "ws", object_names(spec)["pvc"]) is not None


def test_a_rebuild_gives_up_on_a_pod_that_does_not_go(kube_api):
    spec = make_spec(**PLAIN)
    built(kube_api, spec)
    pod = kube_api.get("v1/pods", "ws", object_names(spec)["pod"])
    pod_path = f"/api/v1/namespaces/ws/pods/{object_names(spec)['pod']}"
    # A real API server keeps a deleted pod while it terminates: reading it still finds it.
    pod["metadata"]["deletionTimestamp"] = "2026-11-29T10:00:00Z"
    kube_api.respond(f"get {pod_path}", 200, body=pod)
    log = Recorder()

    result = rebuild_workspace(kube_api.connection(), spec, log, wait=1.0)

    assert not result.ok and "was still terminating after 1 seconds" in result.message
    assert f"Waiting for Pod {object_names(spec)['pod']} to terminate" in log


# --- The bootstrap's grant -----------------------------------------------------------------

def test_the_role_grants_services_only_with_external_ssh():
    def role_resources(**needs):
        role = next(o for o in bootstrap_manifest(provider_name="p1", namespace="ws", **needs)
                    if o["kind"] == "Role")
        return [r for rule in role["rules"] for r in rule["resources"]]

    assert "services" not in role_resources(needs_service_accounts=False)
    assert "services" not in role_resources(needs_service_accounts=True)
    assert "services" in role_resources(needs_service_accounts=False, needs_services=True)
    assert {str(p) for p in required_permissions(needs_service_accounts=False, needs_services=True)} >= {
        "create services", "get services", "list services", "patch services", "delete services"}
    assert not any(p.resource == "services" for p in required_permissions(needs_service_accounts=True))


def test_ssh_turned_on_after_deploy_is_reported_and_deploy_converges_it(kube_api):
    def apply(**needs):
        objs = bootstrap_manifest(provider_name="p1", namespace="ws", provider_uid=PROVIDER_UID,
                                  needs_service_accounts=False, **needs)
        return deploy(kube_api.connection(), objs, provider_uid=PROVIDER_UID, provider_name="p1")

    def run_check(**kwargs):
        return check(kube_api.connection(), provider_name="p1", provider_uid=PROVIDER_UID,
                     needs_service_accounts=False, **kwargs)

    apply()
    assert run_check(needs_services=False).warnings == []
    assert run_check(needs_services=True).warnings == [
        f"{STALE_BOOTSTRAP} (its Role does not grant create services, get services, list services, "
        "patch services, delete services)."]

    apply(needs_services=True)

    assert {"apiGroups": [""], "resources": ["services"],
            "verbs": ["create", "get", "list", "patch", "delete"]} in kube_api.get(ROLES, "ws", "provider-admin")["rules"]
    assert run_check(needs_services=True).warnings == []


def test_a_full_check_names_a_missing_services_permission(kube_api):
    objs = bootstrap_manifest(provider_name="p1", namespace="ws", provider_uid=PROVIDER_UID,
                              needs_service_accounts=False, needs_services=True)
    deploy(kube_api.connection(), objs, provider_uid=PROVIDER_UID, provider_name="p1")
    kube_api.deny("create", "services")
    result = check(kube_api.connection(), provider_name="p1", provider_uid=PROVIDER_UID,
                   needs_services=True, full=True)
    assert not result.ok and result.missing_permissions == ["create services"]
    assert ("create", "services", "ws") in kube_api.reviews()


@pytest.mark.parametrize("needs_services", [False, True])
def test_the_check_asks_about_services_only_when_ssh_is_on(kube_api, needs_services):
    objs = bootstrap_manifest(provider_name="p1", namespace="ws", provider_uid=PROVIDER_UID,
                              needs_service_accounts=False, needs_services=needs_services)
    deploy(kube_api.connection(), objs, provider_uid=PROVIDER_UID, provider_name="p1")
    assert check(kube_api.connection(), provider_name="p1", provider_uid=PROVIDER_UID,
                 needs_services=needs_services, full=True).ok
    asked = {resource for _, resource, _ in kube_api.reviews()}
    assert ("services" in asked) == needs_services
