"""Scheduling hints from the cluster's Nodes and StorageClasses, served by the emulator."""
import pytest

from provider_admin.kube import scheduling_hints
from provider_admin.kube.hints import FORBIDDEN_NOTE, tolerates
from tests.kube import kube_api  # noqa: F401

ZONE = "topology.kubernetes.io/zone"
DEFAULT_CLASS = {"storageclass.kubernetes.io/is-default-class": "true"}
WORKSPACE_TAINT = {"key": "com.coder.workspace", "effect": "NoSchedule"}


def node(api, name, labels=None, taints=None):
    api.put("v1/nodes", None, name, {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": {"taints": taints} if taints else {},
    })


def storage_class(api, name, mode=None, default=False):
    body = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": name, **({"annotations": DEFAULT_CLASS} if default else {})},
            "provisioner": "ebs.csi.aws.com"}
    if mode:
        body["volumeBindingMode"] = mode
    api.put("storage.k8s.io/v1/storageclasses", None, name, body)


def hints(api, **settings):
    kwargs = dict(node_selector=None, tolerations=None, storage_class=None, affinity_stored={})
    return scheduling_hints(api.connection(), **{**kwargs, **settings})


@pytest.fixture
def zonal(kube_api):
    """Two zones, a default Immediate class and a WaitForFirstConsumer one."""
    node(kube_api, "n1", {ZONE: "eu-1a"})
    node(kube_api, "n2", {ZONE: "eu-1b"})
    storage_class(kube_api, "gp2", "Immediate", default=True)
    storage_class(kube_api, "gp3", "WaitForFirstConsumer")
    return kube_api


def test_a_healthy_cluster_gets_no_hints(zonal):
    assert hints(zonal, storage_class="gp3", affinity_stored=None) == []
    assert zonal.requests == ["GET /api/v1/nodes", "GET /apis/storage.k8s.io/v1/storageclasses"]


# --- Node selector -----------------------------------------------------------------------

def test_no_node_matches_the_node_selector(zonal):
    node(zonal, "gpu", {"node-pool": "gpu"})
    node(zonal, "std", {"node-pool": "default"})

    found = hints(zonal, node_selector={"node-pool": "workspaces", "disk": "ssd"})

    assert found == [
        'No node matches the pod node selector {"disk": "ssd", "node-pool": "workspaces"} '
        "(node-pool is default or gpu on the nodes, never workspaces; no node has the label "
        "disk): workspace pods would stay Pending. Fix the node selector or label the nodes "
        "meant for workspaces."]


def test_labels_that_exist_but_never_together(zonal):
    node(zonal, "a", {"node-pool": "workspaces"})
    node(zonal, "b", {"disk": "ssd"})

    found = hints(zonal, node_selector={"node-pool": "workspaces", "disk": "ssd"})

    assert len(found) == 1 and "(no single node has all of these labels)" in found[0]


def test_a_matching_node_gives_no_selector_hint(zonal):
    node(zonal, "a", {"node-pool": "workspaces"})

    assert hints(zonal, node_selector={"node-pool": "workspaces"}) == []


def test_a_cluster_without_nodes(kube_api):
    storage_class(kube_api, "gp3", "WaitForFirstConsumer", default=True)

    assert hints(kube_api) == ["The cluster reports no nodes: workspace pods cannot be "
                               "scheduled until nodes join it."]


# --- Taints and tolerations ---------------------------------------------------------------

def test_every_matching_node_is_tainted_against_the_pods(zonal):
    node(zonal, "w1", {"node-pool": "ws"}, [WORKSPACE_TAINT])
    node(zonal, "w2", {"node-pool": "ws"}, [{"key": "gpu", "value": "true", "effect": "NoExecute"},
                                            {"key": "soft", "effect": "PreferNoSchedule"}])

    found = hints(zonal, node_selector={"node-pool": "ws"})

    assert found == [
        "Every node that matches the node selector has a taint that the pod tolerations do not "
        "tolerate: com.coder.workspace:NoSchedule, gpu=true:NoExecute. Workspace pods would "
        'stay Pending: add a toleration for them, e.g. {"key": "com.coder.workspace", '
        '"operator": "Exists", "effect": "NoSchedule"}.']


def test_one_untainted_node_is_enough(zonal):
    node(zonal, "w1", {"node-pool": "ws"}, [WORKSPACE_TAINT])
    node(zonal, "w2", {"node-pool": "ws"})

    assert hints(zonal, node_selector={"node-pool": "ws"}) == []


def test_without_a_selector_every_node_counts(kube_api):
    storage_class(kube_api, "gp3", "WaitForFirstConsumer", default=True)
    node(kube_api, "cp", taints=[{"key": "node-role.kubernetes.io/control-plane",
                                  "effect": "NoSchedule"}])

    found = hints(kube_api)

    assert len(found) == 1
    assert found[0].startswith("Every node has a taint that the pod tolerations do not "
                               "tolerate: node-role.kubernetes.io/control-plane:NoSchedule.")


@pytest.mark.parametrize("toleration", [
    {"key": "com.coder.workspace", "operator": "Exists", "effect": "NoSchedule"},  # the document's
    {"key": "com.coder.workspace", "operator": "Exists"},
    {"operator": "Exists"},
    {"key": "com.coder.workspace", "operator": "Equal", "value": "", "effect": "NoSchedule"},
])
def test_the_tolerations_clear_the_hint(zonal, toleration):
    node(zonal, "w1", {"node-pool": "ws"}, [WORKSPACE_TAINT])

    assert hints(zonal, node_selector={"node-pool": "ws"}, tolerations=[toleration]) == []


TAINT = {"key": "dedicated", "value": "coder", "effect": "NoSchedule"}


@pytest.mark.parametrize("toleration,expected", [
    ({"key": "dedicated", "operator": "Equal", "value": "coder", "effect": "NoSchedule"}, True),
    ({"key": "dedicated", "value": "coder"}, True),  # operator defaults to Equal, effect to all
    ({"key": "dedicated", "operator": "Equal", "value": "other"}, False),
    ({"key": "dedicated", "operator": "Exists"}, True),
    ({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}, False),
    ({"key": "other", "operator": "Exists"}, False),
    ({"operator": "Exists"}, True),  # an empty key with Exists tolerates everything
    ({"operator": "Exists", "effect": "NoExecute"}, False),
    ({"key": "", "operator": "Exists", "effect": ""}, True),
    ({"key": "dedicated", "operator": "Gt", "value": "1"}, False),  # unknown operator
])
def test_toleration_matching_follows_kubernetes(toleration, expected):
    assert tolerates(toleration, TAINT) is expected


# --- Storage classes and zones ------------------------------------------------------------

ZONE_WARNING_END = ("Set Affinity to {} to unset the default affinity and allow the default "
                    "behavior of the Kubernetes scheduler, or use a storage class with "
                    "volumeBindingMode WaitForFirstConsumer.")


def test_default_affinity_with_an_immediate_class_across_zones(zonal):
    found = hints(zonal, affinity_stored=None)  # no class set: the default one, gp2

    assert found == [
        "The nodes span 2 availability zones (eu-1a, eu-1b) and the cluster's default storage "
        "class gp2 binds volumes as soon as they are claimed (volumeBindingMode Immediate). "
        "With Coder's default affinity this can cause pods to become saturated in a single "
        "zone and become unschedulable, because persistent disks are often zonal. "
        + ZONE_WARNING_END]


def test_a_named_class_with_an_unset_binding_mode_is_immediate(zonal):
    storage_class(zonal, "legacy")

    found = hints(zonal, storage_class="legacy", affinity_stored=None)

    assert len(found) == 1
    assert "storage class legacy binds volumes" in found[0]
    assert "(volumeBindingMode unset: Immediate)" in found[0]
    assert found[0].endswith(ZONE_WARNING_END)


@pytest.mark.parametrize("settings", [
    {"affinity_stored": {}},  # the document's advice, taken
    {"affinity_stored": {"podAntiAffinity": {}}},  # a custom affinity is the admin's call
    {"affinity_stored": None, "storage_class": "gp3"},  # WaitForFirstConsumer
    {"affinity_stored": None, "node_selector": {ZONE: "eu-1a"}},  # one zone only
])
def test_no_zone_warning_when_it_cannot_happen(zonal, settings):
    assert hints(zonal, **settings) == []


def test_no_zone_warning_in_a_single_zone(kube_api):
    node(kube_api, "n1", {ZONE: "eu-1a"})
    node(kube_api, "n2", {ZONE: "eu-1a"})
    storage_class(kube_api, "gp2", "Immediate", default=True)

    assert hints(kube_api, affinity_stored=None) == []


def test_a_storage_class_that_does_not_exist(zonal):
    found = hints(zonal, storage_class="fast-ssd")

    assert found == ["The storage class fast-ssd does not exist in the cluster (it has: gp2, "
                     "gp3): home volume claims would stay Pending. Choose an existing one on "
                     "the provider."]


def test_no_storage_class_and_no_default(kube_api):
    node(kube_api, "n1")
    storage_class(kube_api, "gp3", "WaitForFirstConsumer")

    found = hints(kube_api)

    assert found == ["The provider sets no storage class and the cluster has no default "
                     "storage class (it has: gp3): home volume claims may stay Pending. Set a "
                     "storage class on the provider."]


# --- When the cluster does not tell ---------------------------------------------------------

@pytest.mark.parametrize("path", ["get /api/v1/nodes", "get /apis/storage.k8s.io/v1/storageclasses"])
def test_forbidden_gives_a_single_note(zonal, path):
    zonal.respond(path, 403, 'nodes is forbidden: User "system:serviceaccount:ws:pa" cannot list')

    assert hints(zonal, node_selector={"nope": "x"}, affinity_stored=None) == [FORBIDDEN_NOTE]
    assert "ClusterRole" in FORBIDDEN_NOTE


def test_an_unreachable_cluster_gives_a_single_note(kube_api):
    conn = kube_api.connection()
    kube_api.stop()

    found = scheduling_hints(conn, node_selector=None, tolerations=None, storage_class=None,
                             affinity_stored=None, timeout=1)

    assert len(found) == 1
    assert found[0].startswith("Scheduling hints are unavailable: Connection to")
    assert "was refused" in found[0]


def test_a_server_error_gives_a_single_note(zonal):
    zonal.respond("get /api/v1/nodes", 500, "etcd is down")

    found = hints(zonal)

    assert len(found) == 1 and "etcd is down" in found[0]
