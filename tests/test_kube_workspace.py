"""A workspace's objects: their manifests, building them into a cluster and tearing them down."""
import dataclasses

import kubernetes_validate
import pytest

from provider_admin.kube import (
    WorkspaceSpec,
    build_workspace,
    object_names,
    teardown_workspace,
    workspace_objects,
)
from provider_admin.scheduling import DEFAULT_AFFINITY
from tests.kube import kube_api  # noqa: F401

SCHEMA_VERSIONS = ["1.33", kubernetes_validate.latest_version()]
ROLE_ARN = "arn:aws:iam::123456789123:role/coder-role-{{.UserEmail}}"  # the source document's
TOLERATION = {"key": "com.coder.workspace", "operator": "Exists", "effect": "NoSchedule"}
LABELS = {"com.coder.resource": "true", "com.coder.workspace.id": "3",
          "app.kubernetes.io/managed-by": "provider-admin"}
NS = "/api/v1/namespaces/ws"


@pytest.fixture
def cluster(kube_api):
    """The emulator; its scripted errors (`refuse`) leave the object store alone."""
    return kube_api


def make_spec(**overrides) -> WorkspaceSpec:
    fields = dict(
        workspace_id=3, name="dev", owner_email="ada@example.com", owner_username="ada",
        organization_name="Research", provider_name="eu-1", namespace="ws",
        image="codercom/enterprise-base:ubuntu", cpu="2", memory="4Gi", disk="10Gi",
        access_url="https://coder.example.com", e2e_encryption=True, external_ssh=False,
        storage_class="fast-ssd", service_account="workspaces",
        annotations={"eks.amazonaws.com/role-arn": ROLE_ARN}, tolerations=[TOLERATION],
        node_selector={"node-pool": "workspaces"}, affinity=None,
    )
    return WorkspaceSpec(**{**fields, **overrides})


PLAIN = dict(annotations=None, service_account=None, storage_class=None, tolerations=None,
             node_selector=None, affinity={})


class Recorder(list):
    """The `log` callback: keeps the lines in order."""

    def __call__(self, line: str) -> None:
        self.append(line)


def run_build(api, spec, **kwargs):
    log = Recorder()
    return build_workspace(api.connection(), spec, log, **kwargs), log


def stored(api, spec) -> dict:
    names = object_names(spec)
    return {"sa": api.get("v1/serviceaccounts", "ws", names["service_account"]),
            "pvc": api.get("v1/persistentvolumeclaims", "ws", names["pvc"]),
            "pod": api.get("v1/pods", "ws", names["pod"])}


# --- Manifests ---------------------------------------------------------------------------

@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize("overrides", [
    {},
    PLAIN,
    {"annotations": None},
    {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["eu-1a"]}]}]}}}},
    {"name": "a" * 63, "workspace_id": 9_007_199_254_740_991, "cpu": "500m", "memory": "512Mi"},
    {"annotations": {"a.example.com/user": "{{ .Username }}@{{.OrganizationName}}",
                     "b.example.com/ws": "{{.WorkspaceName}}"}},
], ids=["full", "plain", "provider-sa", "custom-affinity", "long-name", "several-annotations"])
def test_every_object_is_valid_kubernetes(overrides, version):
    for obj in workspace_objects(make_spec(**overrides)):
        kubernetes_validate.validate(obj, version, strict=True)


def test_objects_in_build_order_with_labels_everywhere():
    objs = workspace_objects(make_spec())

    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [
        ("ServiceAccount", "ws-3-dev"), ("PersistentVolumeClaim", "ws-3-dev-home"), ("Pod", "ws-3-dev")]
    assert all(o["metadata"]["labels"] == LABELS and o["metadata"]["namespace"] == "ws"
               for o in objs)


@pytest.mark.parametrize("workspace_id,name", [(3, "a" * 63), (12345678, "x-" * 30 + "abc"),
                                               (1, "dev")])
def test_names_are_stable_dns_labels_that_keep_the_id(workspace_id, name):
    spec = make_spec(workspace_id=workspace_id, name=name)

    names = object_names(spec)

    assert names == object_names(dataclasses.replace(spec, image="other"))
    for value in names.values():
        assert len(value) <= 63 and value[0].isalnum() and value[-1].isalnum()
        assert value.startswith(f"ws-{workspace_id}-")
    assert names["pvc"].endswith("-home") and names["pvc"] != names["pod"]


@pytest.mark.parametrize("name", ["Dev", "-dev", "dev_1", "", "a" * 64])
def test_invalid_workspace_names_are_refused(name):
    with pytest.raises(ValueError, match="DNS-1123"):
        object_names(make_spec(name=name))


def test_pod_and_claim_carry_the_spec():
    _, pvc, pod = workspace_objects(make_spec())
    container = pod["spec"]["containers"][0]

    assert pvc["spec"] == {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast-ssd",
                           "resources": {"requests": {"storage": "10Gi"}}}
    assert container["name"] == "dev" and container["image"] == "codercom/enterprise-base:ubuntu"
    assert container["resources"] == {"requests": {"cpu": "2", "memory": "4Gi"},
                                      "limits": {"cpu": "2", "memory": "4Gi"}}
    assert container["volumeMounts"] == [{"name": "home", "mountPath": "/home/coder"}]
    assert pod["spec"]["volumes"] == [{"name": "home",
                                       "persistentVolumeClaim": {"claimName": "ws-3-dev-home"}}]
    assert {v["name"]: v["value"] for v in container["env"]} == {
        "CODER_USER_EMAIL": "ada@example.com", "CODER_USERNAME": "ada",
        "CODER_WORKSPACE_NAME": "dev", "CODER_WORKSPACE_PROVIDER": "eu-1",
        "CODER_ACCESS_URL": "https://coder.example.com", "CODER_E2E_ENCRYPTION": "true",
        "CODER_EXTERNAL_SSH": "false"}
    assert pod["spec"]["tolerations"] == [TOLERATION]
    assert pod["spec"]["nodeSelector"] == {"node-pool": "workspaces"}


def test_annotations_are_rendered_once_without_re_expanding_the_values():
    spec = make_spec(owner_email="{{.Username}}@example.com",
                     annotations={"x.example.com/who": "{{ .UserEmail }}/{{.Username}}/"
                                                       "{{.WorkspaceName}}/{{.OrganizationName}}"})

    sa = workspace_objects(spec)[0]

    assert sa["metadata"]["annotations"] == {
        "x.example.com/who": "{{.Username}}@example.com/ada/dev/Research"}


def test_mutating_the_objects_leaves_the_spec_alone():
    spec = make_spec(affinity={"podAntiAffinity": {}}, tolerations=[dict(TOLERATION)])
    pod = workspace_objects(spec)[-1]

    pod["spec"]["affinity"]["x"] = 1
    pod["spec"]["tolerations"][0]["key"] = "changed"

    assert spec.affinity == {"podAntiAffinity": {}} and spec.tolerations == [TOLERATION]
    assert workspace_objects(make_spec())[-1]["spec"]["affinity"] == DEFAULT_AFFINITY


# --- Build against the emulator -----------------------------------------------------------

def test_build_creates_the_objects_with_a_rendered_role_arn(kube_api):
    spec = make_spec()

    result, log = run_build(kube_api, spec)

    assert result.ok, result.message
    assert result.created == [("ServiceAccount", "ws-3-dev"),
                              ("PersistentVolumeClaim", "ws-3-dev-home"), ("Pod", "ws-3-dev")]
    assert result.remaining == []
    assert result.message == ("Created ServiceAccount ws-3-dev, PersistentVolumeClaim "
                              "ws-3-dev-home, Pod ws-3-dev in namespace ws.")
    assert kube_api.requests == [f"POST {NS}/serviceaccounts",
                                 f"POST {NS}/persistentvolumeclaims", f"POST {NS}/pods"]
    objs = stored(kube_api, spec)
    assert objs["sa"]["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789123:role/coder-role-ada@example.com"}
    assert objs["pvc"]["spec"]["storageClassName"] == "fast-ssd"
    assert objs["pvc"]["spec"]["resources"] == {"requests": {"storage": "10Gi"}}
    assert objs["pod"]["spec"]["serviceAccountName"] == "ws-3-dev"  # the per-workspace one
    assert "automountServiceAccountToken" not in objs["pod"]["spec"]
    assert objs["pod"]["spec"]["affinity"] == DEFAULT_AFFINITY
    assert objs["pod"]["spec"]["tolerations"] == [TOLERATION]
    assert all(o["metadata"]["labels"] == LABELS for o in objs.values())
    assert log == [
        "Created ServiceAccount ws-3-dev with annotation eks.amazonaws.com/role-arn="
        "arn:aws:iam::123456789123:role/coder-role-ada@example.com",
        "Created PersistentVolumeClaim ws-3-dev-home (10Gi, storage class fast-ssd)",
        "Created Pod ws-3-dev (image codercom/enterprise-base:ubuntu, cpu 2, memory 4Gi, "
        "service account ws-3-dev)",
    ]


def test_without_annotations_the_provider_service_account_is_used(kube_api):
    spec = make_spec(annotations={}, affinity={})

    result, log = run_build(kube_api, spec)

    assert result.ok
    assert [kind for kind, _ in result.created] == ["PersistentVolumeClaim", "Pod"]
    assert not any("serviceaccounts" in r for r in kube_api.requests)
    pod = stored(kube_api, spec)["pod"]["spec"]
    assert pod["serviceAccountName"] == "workspaces"
    assert "affinity" not in pod  # {} means no affinity at all
    assert log[-1].endswith("service account workspaces)")


def test_without_any_service_account_the_token_is_not_mounted(kube_api):
    spec = make_spec(**PLAIN)

    result, log = run_build(kube_api, spec)

    assert result.ok
    objs = stored(kube_api, spec)
    assert objs["sa"] is None
    assert "serviceAccountName" not in objs["pod"]["spec"]
    assert objs["pod"]["spec"]["automountServiceAccountToken"] is False
    assert "storageClassName" not in objs["pvc"]["spec"]
    assert "tolerations" not in objs["pod"]["spec"] and "nodeSelector" not in objs["pod"]["spec"]
    assert log == [
        "Created PersistentVolumeClaim ws-3-dev-home (10Gi, the cluster default storage class)",
        "Created Pod ws-3-dev (image codercom/enterprise-base:ubuntu, cpu 2, memory 4Gi, "
        "no service account)",
    ]


def test_rebuilding_after_success_is_idempotent(kube_api):
    spec = make_spec()
    first, _ = run_build(kube_api, spec)
    before = stored(kube_api, spec)

    again, log = run_build(kube_api, spec)

    assert first.ok and again.ok
    assert again.created == []
    assert log == ["ServiceAccount ws-3-dev already exists; keeping it",
                   "PersistentVolumeClaim ws-3-dev-home already exists; keeping it",
                   "Pod ws-3-dev already exists; keeping it"]
    assert again.message.startswith("Created nothing in namespace ws; already present: ")
    assert stored(kube_api, spec) == before
    assert not any(r.startswith("DELETE") for r in kube_api.requests)


@pytest.mark.parametrize("status,message,expected", [
    (403, 'pods "ws-3-dev" is forbidden: User "system:serviceaccount:ws:pa" cannot create',
     "Forbidden (403 on create pods in namespace ws): pods \"ws-3-dev\" is forbidden"),
    (422, 'Pod "ws-3-dev" is invalid: spec.containers[0].image: Required value',
     'The cluster rejected the Pod as invalid: Pod "ws-3-dev" is invalid: '
     "spec.containers[0].image: Required value"),
])
def test_a_failing_pod_removes_what_the_build_created(cluster, status, message, expected):
    kube_api = cluster
    kube_api.refuse("POST", f"{NS}/pods", status, message)
    spec = make_spec()

    result, log = run_build(kube_api, spec)

    assert not result.ok
    assert result.message.startswith(f"Creating Pod ws-3-dev failed: {expected}")
    assert result.message.endswith("The objects this build created were removed again.")
    assert result.remaining == []
    assert result.created == [("ServiceAccount", "ws-3-dev"),
                              ("PersistentVolumeClaim", "ws-3-dev-home")]
    assert stored(kube_api, spec) == {"sa": None, "pvc": None, "pod": None}
    assert log[2].startswith(f"Creating Pod ws-3-dev failed: {expected}")
    assert log[3:] == [
        "Removing what this build created: PersistentVolumeClaim ws-3-dev-home, "
        "ServiceAccount ws-3-dev",
        "Removed PersistentVolumeClaim ws-3-dev-home",
        "Removed ServiceAccount ws-3-dev",
    ]
    assert kube_api.requests[-2:] == [f"DELETE {NS}/persistentvolumeclaims/ws-3-dev-home",
                                      f"DELETE {NS}/serviceaccounts/ws-3-dev"]


def test_a_failing_cleanup_says_exactly_what_remains(cluster):
    kube_api = cluster
    kube_api.refuse("POST", f"{NS}/pods", 500, "etcdserver: leader changed")
    kube_api.refuse("DELETE", f"{NS}/persistentvolumeclaims/ws-3-dev-home", 403, "no delete")
    spec = make_spec()

    result, log = run_build(kube_api, spec)

    assert not result.ok
    assert result.remaining == [("PersistentVolumeClaim", "ws-3-dev-home")]
    assert "etcdserver: leader changed" in result.message
    assert result.message.endswith("Removing what this build created failed; still in "
                                   "namespace ws: PersistentVolumeClaim ws-3-dev-home.")
    assert log[-2].startswith("Could not remove PersistentVolumeClaim ws-3-dev-home: Forbidden")
    assert log[-1] == "Removed ServiceAccount ws-3-dev"  # the cleanup goes on past a refusal
    assert stored(kube_api, spec)["sa"] is None and stored(kube_api, spec)["pvc"] is not None


def test_objects_of_an_earlier_build_are_never_removed(cluster):
    kube_api = cluster
    kube_api.put("v1/persistentvolumeclaims", "ws", "ws-3-dev-home", {"spec": {"old": "data"}})
    kube_api.refuse("POST", f"{NS}/pods", 403, "forbidden")
    spec = make_spec(annotations=None)

    result, log = run_build(kube_api, spec)

    assert not result.ok and result.created == [] and result.remaining == []
    assert log[0] == "PersistentVolumeClaim ws-3-dev-home already exists; keeping it"
    assert kube_api.get("v1/persistentvolumeclaims", "ws", "ws-3-dev-home")["spec"] == {"old": "data"}
    assert not any(r.startswith("DELETE") for r in kube_api.requests)


def test_a_lost_answer_is_reported_not_guessed(kube_api):
    kube_api.slow(f"post {NS}/pods", 1.5)
    spec = make_spec()

    result, log = run_build(kube_api, spec, timeout=0.5)

    assert not result.ok
    assert "did not answer within 0.5 s" in result.message
    assert "so Pod ws-3-dev may exist: deleting the workspace removes it." in result.message
    assert result.remaining == [("Pod", "ws-3-dev")]
    assert log[-1] == "Pod ws-3-dev may exist anyway: the cluster's answer was lost"
    assert stored(kube_api, spec)["pvc"] is None  # what it surely created is gone again


def test_build_against_a_dead_cluster(kube_api):
    conn = kube_api.connection()
    kube_api.stop()
    log = Recorder()

    result = build_workspace(conn, make_spec(), log, timeout=1)

    assert not result.ok and result.created == [] and result.remaining == []
    assert "was refused" in result.message and len(log) == 1


@pytest.mark.parametrize("change,expected", [
    ({"spec": {"name": "Bad Name"}}, "Cannot build: The workspace name 'Bad Name' is not"),
    ({"conn": {"ca_cert": "not a certificate"}}, "Cannot build: The CA certificate is not"),
])
def test_bad_input_gives_a_result_not_an_exception(kube_api, change, expected):
    log = Recorder()

    result = build_workspace(kube_api.connection(**change.get("conn", {})),
                             make_spec(**change.get("spec", {})), log)

    assert not result.ok and result.message.startswith(expected)
    assert log == [result.message] and kube_api.requests == []


def test_a_failing_log_callback_does_not_stop_the_build(kube_api):
    def log(line):
        raise RuntimeError("database is locked")

    result = build_workspace(kube_api.connection(), make_spec(), log)

    assert result.ok and len(result.created) == 3


# --- Teardown ---------------------------------------------------------------------------

def test_teardown_deletes_everything_then_finds_it_gone(kube_api):
    spec = make_spec()
    run_build(kube_api, spec)
    log = Recorder()

    result = teardown_workspace(kube_api.connection(), spec, log)
    again = teardown_workspace(kube_api.connection(), spec, Recorder())

    assert result.ok and result.remaining == []
    assert result.message == "Deleted the workspace's objects from namespace ws."
    assert log == ["Deleted Pod ws-3-dev", "Deleted PersistentVolumeClaim ws-3-dev-home",
                   "Deleted ServiceAccount ws-3-dev"]
    assert stored(kube_api, spec) == {"sa": None, "pvc": None, "pod": None}
    assert again.ok


def test_teardown_with_names_of_a_workspace_whose_spec_is_gone(kube_api):
    spec = make_spec()
    run_build(kube_api, spec)
    log = Recorder()

    result = teardown_workspace(kube_api.connection(), object_names(spec), log)

    assert result.ok and stored(kube_api, spec) == {"sa": None, "pvc": None, "pod": None}
    assert len(log) == 3


def test_teardown_without_annotations_tolerates_a_forbidden_service_account(cluster):
    kube_api = cluster
    spec = make_spec(annotations=None)
    run_build(kube_api, spec)
    kube_api.refuse("DELETE", f"{NS}/serviceaccounts/ws-3-dev", 403, "no service accounts")
    log = Recorder()

    result = teardown_workspace(kube_api.connection(), spec, log)

    assert result.ok, result.message
    assert log == ["Deleted Pod ws-3-dev", "Deleted PersistentVolumeClaim ws-3-dev-home"]


def test_teardown_with_the_cluster_down_reports_what_remains(kube_api):
    spec = make_spec()
    run_build(kube_api, spec)
    conn = kube_api.connection()
    kube_api.stop()
    log = Recorder()

    result = teardown_workspace(conn, spec, log, timeout=1)

    assert not result.ok
    assert result.remaining == [("Pod", "ws-3-dev"), ("PersistentVolumeClaim", "ws-3-dev-home"),
                                ("ServiceAccount", "ws-3-dev")]
    assert result.message == ("Could not delete everything; still in namespace ws: Pod ws-3-dev, "
                              "PersistentVolumeClaim ws-3-dev-home, ServiceAccount ws-3-dev.")
    assert len(log) == 1 and "was refused" in log[0]  # one refusal, no waiting on the rest
    kube_api.start()
    assert teardown_workspace(conn, spec, Recorder()).ok


def test_teardown_with_one_refusal_deletes_the_rest(cluster):
    kube_api = cluster
    spec = make_spec()
    run_build(kube_api, spec)
    kube_api.refuse("DELETE", f"{NS}/pods/ws-3-dev", 403, "pods is forbidden")

    result = teardown_workspace(kube_api.connection(), spec, Recorder())

    assert not result.ok and result.remaining == [("Pod", "ws-3-dev")]
    assert stored(kube_api, spec)["pvc"] is None and stored(kube_api, spec)["pod"] is not None


def test_a_gateway_timeout_counts_as_a_lost_answer(cluster):
    cluster.refuse("POST", f"{NS}/pods", 504, "Timeout: request did not complete within 60s")

    result, _ = run_build(cluster, make_spec(annotations=None))

    assert result.remaining == [("Pod", "ws-3-dev")]
    assert "may exist: deleting the workspace removes it." in result.message
    assert cluster.get("v1/persistentvolumeclaims", "ws", "ws-3-dev-home") is None
