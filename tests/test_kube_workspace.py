"""A workspace's objects: their manifests, building them into a cluster and tearing them down."""
import dataclasses
import uuid

import kubernetes_validate
import pytest

from provider_admin.kube import (
    WORKSPACE_UID_LABEL as UID_LABEL,
    WorkspaceSpec,
    build_workspace,
    object_base,
    object_names,
    pod_state,
    teardown_workspace,
    workspace_objects,
)
from provider_admin.kube.workspace import owned
from provider_admin.scheduling import DEFAULT_AFFINITY
from tests.kube import kube_api  # noqa: F401
from tests.seed import ANNOTATIONS, TOLERATION

SCHEMA_VERSIONS = ["1.33", kubernetes_validate.latest_version()]
UID = "3a7f0c1e9b" + "4" * 22
LABELS = {"com.coder.resource": "true", UID_LABEL: UID,
          "app.kubernetes.io/managed-by": "provider-admin"}
NS = "/api/v1/namespaces/ws"


@pytest.fixture
def cluster(kube_api):
    """The emulator; its scripted errors (`refuse`) leave the object store alone."""
    return kube_api


def make_spec(**overrides) -> WorkspaceSpec:
    fields = dict(
        uid=UID, name="dev", owner_email="ada@example.com", owner_username="ada",
        organization_name="Research", provider_name="eu-1", namespace="ws",
        image="codercom/enterprise-base:ubuntu", cpu="2", memory="4Gi", disk="10Gi",
        access_url="https://coder.example.com", e2e_encryption=True, external_ssh=False,
        storage_class="fast-ssd", service_account="workspaces",
        annotations=ANNOTATIONS, tolerations=[TOLERATION],
        node_selector={"node-pool": "workspaces"}, affinity=None,
    )
    fields.update(overrides)
    fields.setdefault("base_name", f"ws-{fields['uid'][:10]}-{fields['name']}"[:63])
    return WorkspaceSpec(**fields)


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
    {"name": "a" * 63, "cpu": "500m", "memory": "512Mi"},
    {"annotations": {"a.example.com/user": "{{ .Username }}@{{.OrganizationName}}",
                     "b.example.com/ws": "{{.WorkspaceName}}"}},
], ids=["full", "plain", "provider-sa", "custom-affinity", "long-name", "several-annotations"])
def test_every_object_is_valid_kubernetes(overrides, version):
    for obj in workspace_objects(make_spec(**overrides)):
        kubernetes_validate.validate(obj, version, strict=True)


def test_objects_in_build_order_with_labels_everywhere():
    objs = workspace_objects(make_spec())

    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [
        ("ServiceAccount", "ws-3a7f0c1e9b-dev"), ("PersistentVolumeClaim", "ws-3a7f0c1e9b-dev-home"), ("Pod", "ws-3a7f0c1e9b-dev")]
    assert all(o["metadata"]["labels"] == LABELS and o["metadata"]["namespace"] == "ws"
               for o in objs)


@pytest.mark.parametrize("uid,name", [(UID, "a" * 63), ("f" * 32, "x-" * 30 + "abc"), ("0" * 32, "dev")])
def test_names_are_stable_dns_labels_that_keep_the_uid(uid, name):
    spec = make_spec(uid=uid, base_name=object_base(uid, name), name=name)

    names = object_names(spec)

    assert names == object_names(dataclasses.replace(spec, image="other"))
    for value in names.values():
        assert len(value) <= 63 and value[0].isalnum() and value[-1].isalnum()
        assert value.startswith(f"ws-{uid[:10]}-")
    assert names["pvc"].endswith("-home") and names["pvc"] != names["pod"]


def test_names_never_come_from_a_database_id():
    # Two workspaces named alike (one made after the other's record was removed and its
    # id handed out again) get different object names: their uids differ.
    first, second = (object_base(uuid.uuid4().hex, "dev") for _ in range(2))
    assert first != second and first.startswith("ws-") and second.endswith("-dev")


def test_a_legacy_workspace_keeps_its_names_and_is_known_by_its_id_label():
    spec = make_spec(base_name="ws-1-dev", legacy_id=1)
    legacy = {"metadata": {"labels": {"com.coder.workspace.id": "1"}}}

    assert object_names(spec) == {"pod": "ws-1-dev", "pvc": "ws-1-dev-home", "service_account": "ws-1-dev",
                                  "service": "ws-1-dev"}
    assert owned(legacy, spec)
    assert not owned(legacy, make_spec(base_name="ws-1-dev"))  # a new workspace never adopts it
    assert not owned({"metadata": {"labels": {"com.coder.workspace.id": "1", UID_LABEL: "x"}}}, spec)


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
                                       "persistentVolumeClaim": {"claimName": "ws-3a7f0c1e9b-dev-home"}}]
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
    assert result.created == [("ServiceAccount", "ws-3a7f0c1e9b-dev"),
                              ("PersistentVolumeClaim", "ws-3a7f0c1e9b-dev-home"), ("Pod", "ws-3a7f0c1e9b-dev")]
    assert result.remaining == []
    assert result.message == ("Created ServiceAccount ws-3a7f0c1e9b-dev, PersistentVolumeClaim "
                              "ws-3a7f0c1e9b-dev-home, Pod ws-3a7f0c1e9b-dev in namespace ws.")
    assert kube_api.requests == [f"POST {NS}/serviceaccounts",
                                 f"POST {NS}/persistentvolumeclaims", f"POST {NS}/pods"]
    objs = stored(kube_api, spec)
    assert objs["sa"]["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789123:role/coder-role-ada@example.com"}
    assert objs["pvc"]["spec"]["storageClassName"] == "fast-ssd"
    assert objs["pvc"]["spec"]["resources"] == {"requests": {"storage": "10Gi"}}
    assert objs["pod"]["spec"]["serviceAccountName"] == "ws-3a7f0c1e9b-dev"  # the per-workspace one
    assert "automountServiceAccountToken" not in objs["pod"]["spec"]
    assert objs["pod"]["spec"]["affinity"] == DEFAULT_AFFINITY
    assert objs["pod"]["spec"]["tolerations"] == [TOLERATION]
    assert all(o["metadata"]["labels"] == LABELS for o in objs.values())
    assert log == [
        "Created ServiceAccount ws-3a7f0c1e9b-dev with annotation eks.amazonaws.com/role-arn="
        "arn:aws:iam::123456789123:role/coder-role-ada@example.com",
        "Created PersistentVolumeClaim ws-3a7f0c1e9b-dev-home (10Gi, storage class fast-ssd)",
        "Created Pod ws-3a7f0c1e9b-dev (image codercom/enterprise-base:ubuntu, cpu 2, memory 4Gi, "
        "service account ws-3a7f0c1e9b-dev)",
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
        "Created PersistentVolumeClaim ws-3a7f0c1e9b-dev-home (10Gi, the cluster default storage class)",
        "Created Pod ws-3a7f0c1e9b-dev (image codercom/enterprise-base:ubuntu, cpu 2, memory 4Gi, "
        "no service account)",
    ]


def test_rebuilding_after_success_is_idempotent(kube_api):
    spec = make_spec()
    first, _ = run_build(kube_api, spec)
    before = stored(kube_api, spec)

    again, log = run_build(kube_api, spec)

    assert first.ok and again.ok
    assert again.created == []
    assert log == [f"{ref} already exists from an earlier run of this workspace's build; using it"
                   for ref in ("ServiceAccount ws-3a7f0c1e9b-dev", "PersistentVolumeClaim ws-3a7f0c1e9b-dev-home",
                               "Pod ws-3a7f0c1e9b-dev")]
    assert again.message.startswith("Created nothing in namespace ws; already present from an earlier run: ")
    assert stored(kube_api, spec) == before
    assert not any(r.startswith("DELETE") for r in kube_api.requests)


@pytest.mark.parametrize("status,message,expected", [
    (403, 'pods "ws-3a7f0c1e9b-dev" is forbidden: User "system:serviceaccount:ws:pa" cannot create',
     "Forbidden (403 on create pods in namespace ws): pods \"ws-3a7f0c1e9b-dev\" is forbidden"),
    (422, 'Pod "ws-3a7f0c1e9b-dev" is invalid: spec.containers[0].image: Required value',
     'The cluster rejected the Pod as invalid: Pod "ws-3a7f0c1e9b-dev" is invalid: '
     "spec.containers[0].image: Required value"),
])
def test_a_failing_pod_removes_what_the_build_created(cluster, status, message, expected):
    kube_api = cluster
    kube_api.refuse("POST", f"{NS}/pods", status, message)
    spec = make_spec()

    result, log = run_build(kube_api, spec)

    assert not result.ok
    assert result.message.startswith(f"Creating Pod ws-3a7f0c1e9b-dev failed: {expected}")
    assert result.message.endswith("The objects this build created were removed again.")
    assert result.remaining == []
    assert result.created == [("ServiceAccount", "ws-3a7f0c1e9b-dev"),
                              ("PersistentVolumeClaim", "ws-3a7f0c1e9b-dev-home")]
    assert stored(kube_api, spec) == {"sa": None, "pvc": None, "pod": None}
    assert log[2].startswith(f"Creating Pod ws-3a7f0c1e9b-dev failed: {expected}")
    assert log[3:] == [
        "Removing what this build created: PersistentVolumeClaim ws-3a7f0c1e9b-dev-home, "
        "ServiceAccount ws-3a7f0c1e9b-dev",
        "Removed PersistentVolumeClaim ws-3a7f0c1e9b-dev-home",
        "Removed ServiceAccount ws-3a7f0c1e9b-dev",
    ]
    assert kube_api.requests[-2:] == [f"DELETE {NS}/persistentvolumeclaims/ws-3a7f0c1e9b-dev-home",
                                      f"DELETE {NS}/serviceaccounts/ws-3a7f0c1e9b-dev"]


def test_a_failing_cleanup_says_exactly_what_remains(cluster):
    kube_api = cluster
    kube_api.refuse("POST", f"{NS}/pods", 500, "etcdserver: leader changed")
    kube_api.refuse("DELETE", f"{NS}/persistentvolumeclaims/ws-3a7f0c1e9b-dev-home", 403, "no delete")
    spec = make_spec()

    result, log = run_build(kube_api, spec)

    assert not result.ok
    assert result.remaining == [("PersistentVolumeClaim", "ws-3a7f0c1e9b-dev-home")]
    assert "etcdserver: leader changed" in result.message
    assert result.message.endswith("Removing what this build created failed; still in "
                                   "namespace ws: PersistentVolumeClaim ws-3a7f0c1e9b-dev-home.")
    assert log[-2].startswith("Could not remove PersistentVolumeClaim ws-3a7f0c1e9b-dev-home: Forbidden")
    assert log[-1] == "Removed ServiceAccount ws-3a7f0c1e9b-dev"  # the cleanup goes on past a refusal
    assert stored(kube_api, spec)["sa"] is None and stored(kube_api, spec)["pvc"] is not None


def test_objects_of_an_earlier_build_are_adopted_and_never_removed(cluster):
    kube_api = cluster
    kube_api.put("v1/persistentvolumeclaims", "ws", "ws-3a7f0c1e9b-dev-home",
                 {"metadata": {"name": "ws-3a7f0c1e9b-dev-home", "labels": {UID_LABEL: UID}},
                  "spec": {"old": "data"}})
    kube_api.refuse("POST", f"{NS}/pods", 403, "forbidden")
    spec = make_spec(annotations=None)

    result, log = run_build(kube_api, spec)

    assert not result.ok and result.created == [] and result.remaining == []
    assert log[0] == ("PersistentVolumeClaim ws-3a7f0c1e9b-dev-home already exists from an earlier "
                      "run of this workspace's build; using it")
    assert kube_api.get("v1/persistentvolumeclaims", "ws", "ws-3a7f0c1e9b-dev-home")["spec"] == {"old": "data"}
    assert not any(r.startswith("DELETE") for r in kube_api.requests)


@pytest.mark.parametrize("labels", [None, {UID_LABEL: "someone-else"}, {"com.coder.workspace.id": "3"}],
                         ids=["unlabelled", "another-uid", "a-reused-id"])
def test_a_foreign_object_with_the_same_name_stops_the_build(kube_api, labels):
    foreign = {"metadata": {"name": "ws-3a7f0c1e9b-dev-home", **({"labels": labels} if labels else {})},
               "spec": {"owner": "alice"}}
    kube_api.put("v1/persistentvolumeclaims", "ws", "ws-3a7f0c1e9b-dev-home", foreign)
    spec = make_spec()

    result, log = run_build(kube_api, spec)

    assert not result.ok
    assert result.message.startswith("PersistentVolumeClaim ws-3a7f0c1e9b-dev-home already exists and "
                                     "belongs to something else; nothing was changed.")
    assert result.message.endswith("The objects this build created were removed again.")
    assert not any("keeping it" in line for line in log)
    assert kube_api.get("v1/persistentvolumeclaims", "ws", "ws-3a7f0c1e9b-dev-home")["spec"] == {"owner": "alice"}
    assert stored(kube_api, spec)["pod"] is None and stored(kube_api, spec)["sa"] is None
    assert not any(r.endswith("/persistentvolumeclaims/ws-3a7f0c1e9b-dev-home") and r.startswith("DELETE")
                   for r in kube_api.requests)


def test_a_lost_answer_is_reported_not_guessed(kube_api):
    kube_api.slow(f"post {NS}/pods", 1.5)
    spec = make_spec()

    result, log = run_build(kube_api, spec, timeout=0.5)

    assert not result.ok
    assert "did not answer within 0.5 s" in result.message
    assert "so Pod ws-3a7f0c1e9b-dev may exist: deleting the workspace removes it." in result.message
    assert result.remaining == [("Pod", "ws-3a7f0c1e9b-dev")]
    assert log[-1] == "Pod ws-3a7f0c1e9b-dev may exist anyway: the cluster's answer was lost"
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
    assert log == ["Deleted Pod ws-3a7f0c1e9b-dev", "Deleted PersistentVolumeClaim ws-3a7f0c1e9b-dev-home",
                   "Deleted ServiceAccount ws-3a7f0c1e9b-dev"]
    assert stored(kube_api, spec) == {"sa": None, "pvc": None, "pod": None}
    assert again.ok


def test_teardown_leaves_a_same_named_object_that_is_not_its_own(kube_api):
    spec = make_spec()
    run_build(kube_api, spec)
    kube_api.put("v1/pods", "ws", "ws-3a7f0c1e9b-dev", {"metadata": {"name": "ws-3a7f0c1e9b-dev",
                 "labels": {UID_LABEL: "f" * 32}}, "spec": {"owner": "alice"}})
    log = Recorder()

    result = teardown_workspace(kube_api.connection(), spec, log)

    assert result.ok and result.left == [("Pod", "ws-3a7f0c1e9b-dev")]
    assert result.message == ("Deleted the workspace's objects from namespace ws. Left in place, "
                              "not this workspace's: Pod ws-3a7f0c1e9b-dev.")
    assert log[0] == (f"Pod ws-3a7f0c1e9b-dev is not this workspace's (it lacks the label {UID_LABEL}="
                      f"{UID}); left in place")
    assert kube_api.get("v1/pods", "ws", "ws-3a7f0c1e9b-dev")["spec"] == {"owner": "alice"}
    assert stored(kube_api, spec)["pvc"] is None and stored(kube_api, spec)["sa"] is None
    assert f"DELETE {NS}/pods/ws-3a7f0c1e9b-dev" not in kube_api.requests


def test_the_pod_state_of_someone_elses_pod_is_not_shown(kube_api):
    spec = make_spec()
    kube_api.put("v1/pods", "ws", "ws-3a7f0c1e9b-dev", {"metadata": {"name": "ws-3a7f0c1e9b-dev"},
                 "status": {"phase": "Running"}})

    state = pod_state(kube_api.connection(), spec)

    assert state.phase is None and "is not this workspace's" in state.detail


def test_teardown_without_annotations_tolerates_a_forbidden_service_account(cluster):
    kube_api = cluster
    spec = make_spec(annotations=None)
    run_build(kube_api, spec)
    kube_api.refuse("DELETE", f"{NS}/serviceaccounts/ws-3a7f0c1e9b-dev", 403, "no service accounts")
    log = Recorder()

    result = teardown_workspace(kube_api.connection(), spec, log)

    assert result.ok, result.message
    assert log == ["Deleted Pod ws-3a7f0c1e9b-dev", "Deleted PersistentVolumeClaim ws-3a7f0c1e9b-dev-home"]


def test_teardown_with_the_cluster_down_reports_what_remains(kube_api):
    spec = make_spec()
    run_build(kube_api, spec)
    conn = kube_api.connection()
    kube_api.stop()
    log = Recorder()

    result = teardown_workspace(conn, spec, log, timeout=1)

    assert not result.ok
    assert result.remaining == [("Pod", "ws-3a7f0c1e9b-dev"), ("PersistentVolumeClaim", "ws-3a7f0c1e9b-dev-home"),
                                ("ServiceAccount", "ws-3a7f0c1e9b-dev")]
    assert result.message == ("Could not delete everything; still in namespace ws: Pod ws-3a7f0c1e9b-dev, "
                              "PersistentVolumeClaim ws-3a7f0c1e9b-dev-home, ServiceAccount ws-3a7f0c1e9b-dev.")
    assert len(log) == 1 and "was refused" in log[0]  # one refusal, no waiting on the rest
    kube_api.start()
    assert teardown_workspace(conn, spec, Recorder()).ok


def test_teardown_with_one_refusal_deletes_the_rest(cluster):
    kube_api = cluster
    spec = make_spec()
    run_build(kube_api, spec)
    kube_api.refuse("DELETE", f"{NS}/pods/ws-3a7f0c1e9b-dev", 403, "pods is forbidden")

    result = teardown_workspace(kube_api.connection(), spec, Recorder())

    assert not result.ok and result.remaining == [("Pod", "ws-3a7f0c1e9b-dev")]
    assert stored(kube_api, spec)["pvc"] is None and stored(kube_api, spec)["pod"] is not None


def test_a_gateway_timeout_counts_as_a_lost_answer(cluster):
    cluster.refuse("POST", f"{NS}/pods", 504, "Timeout: request did not complete within 60s")

    result, _ = run_build(cluster, make_spec(annotations=None))

    assert result.remaining == [("Pod", "ws-3a7f0c1e9b-dev")]
    assert "may exist: deleting the workspace removes it." in result.message
    assert cluster.get("v1/persistentvolumeclaims", "ws", "ws-3a7f0c1e9b-dev-home") is None
