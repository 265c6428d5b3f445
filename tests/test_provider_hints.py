"""Scheduling hints on the provider page and the edit form, from a Kubernetes API over HTTP."""
import html

import pytest

from provider_admin.models import Role

from .seed import TOLERATIONS_JSON
from .test_kube_hints import DEFAULT_CLASS, WORKSPACE_TAINT, ZONE, node, storage_class


@pytest.fixture
def cluster(kube_api):
    """Two zones, workspace nodes tainted for workspaces, a default class that binds at once."""
    node(kube_api, "ws-a", {ZONE: "eu-1a", "pool": "workspaces"}, [WORKSPACE_TAINT])
    node(kube_api, "ws-b", {ZONE: "eu-1b", "pool": "workspaces"}, [WORKSPACE_TAINT])
    storage_class(kube_api, "gp2", "Immediate", default=True)
    storage_class(kube_api, "gp3", "WaitForFirstConsumer")
    return kube_api


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def test_provider_page_loads_hints_for_the_stored_settings(actions, cluster, kube_provider):
    actions.login()
    provider = kube_provider(cluster, pod_node_selector={"pool": "gpu"})
    page = actions.client.get(f"/manage/providers/{provider.id}").get_data(as_text=True)
    assert f'hx-get="/manage/providers/{provider.id}/hints"' in page

    hints = text(actions.htmx_get(f"/manage/providers/{provider.id}/hints"))

    assert 'No node matches the pod node selector {"pool": "gpu"} (pool is workspaces on the nodes, never gpu)' in hints
    assert "<html" not in hints  # a fragment for the page's slot


def test_hints_page_without_javascript(actions, cluster, kube_provider):
    actions.login()
    provider = kube_provider(cluster, pod_node_selector={"pool": "workspaces"})
    page = text(actions.client.get(f"/manage/providers/{provider.id}/hints"))
    assert "<html" in page and f"Scheduling hints for {provider.name}" in page
    assert "Every node that matches the node selector has a taint that the pod tolerations do not " \
           "tolerate: com.coder.workspace:NoSchedule" in page


def test_edit_form_hints_follow_the_settings_as_typed(actions, cluster, kube_provider):
    actions.login()
    provider = kube_provider(cluster, pod_node_selector={"pool": "gpu"})
    form = actions.client.get(f"/manage/providers/{provider.id}/edit").get_data(as_text=True)
    assert f'hx-post="/manage/providers/{provider.id}/hints"' in form
    typed = {"pod_node_selector": '{"pool": "workspaces"}',
             "pod_tolerations": TOLERATIONS_JSON,
             "storage_class": "", "affinity": ""}  # empty affinity: the default one

    zonal = text(actions.post(f"/manage/providers/{provider.id}/hints", typed, htmx=True))
    assert "No node matches" not in zonal and "taint" not in zonal
    assert "The nodes span 2 availability zones (eu-1a, eu-1b) and the cluster's default storage class gp2 " \
           "binds volumes as soon as they are claimed" in zonal
    assert "Set Affinity to {} to unset the default affinity" in zonal

    fixed = text(actions.post(f"/manage/providers/{provider.id}/hints", {**typed, "affinity": "{}"}, htmx=True))
    assert "No problems found" in fixed

    waits = text(actions.post(f"/manage/providers/{provider.id}/hints", {**typed, "storage_class": "gp3"}, htmx=True))
    assert "No problems found" in waits


def test_edit_form_hints_wait_for_valid_json(actions, cluster, kube_provider):
    actions.login()
    provider = kube_provider(cluster)
    before = len(cluster.requests)
    response = actions.post(f"/manage/providers/{provider.id}/hints",
                            {"pod_node_selector": '{"pool": }', "pod_tolerations": "", "affinity": ""}, htmx=True)
    assert response.status_code == 200 and "Correct the scheduling fields" in text(response)
    assert len(cluster.requests) == before  # nothing asked of the cluster for unparsable settings


def test_hints_say_when_the_credentials_may_not_read_nodes(actions, cluster, kube_provider):
    actions.login()
    cluster.respond("get /api/v1/nodes", 403, "nodes is forbidden")
    provider = kube_provider(cluster)
    hints = text(actions.htmx_get(f"/manage/providers/{provider.id}/hints"))
    assert "Scheduling hints need permission to read nodes and storage classes" in hints
    assert 'class="warning"' not in hints


def test_hints_of_an_unreachable_cluster_are_a_note_not_an_error(actions, cluster, kube_provider):
    actions.login()
    provider = kube_provider(cluster)
    cluster.stop()
    response = actions.htmx_get(f"/manage/providers/{provider.id}/hints")
    assert response.status_code == 200 and "Scheduling hints are unavailable" in text(response)


def test_hints_escape_what_the_cluster_says(actions, kube_api, kube_provider):
    actions.login()
    node(kube_api, "n1", {"pool": "<script>alert(1)</script>"})
    storage_class(kube_api, "gp3", "WaitForFirstConsumer", default=True)
    provider = kube_provider(kube_api, pod_node_selector={"pool": "x"})
    body = actions.htmx_get(f"/manage/providers/{provider.id}/hints").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in body and "&lt;script&gt;" in body


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_members_get_no_hints(actions, client, make_provider, method):
    provider = make_provider()
    actions.login(Role.MEMBER.value)
    response = actions.post(f"/manage/providers/{provider.id}/hints", {}, htmx=True) if method == "POST" \
        else client.get(f"/manage/providers/{provider.id}/hints")
    assert response.status_code == 403


def test_hints_post_needs_the_csrf_token(actions, client, make_provider):
    actions.login()
    provider = make_provider()
    response = client.post(f"/manage/providers/{provider.id}/hints", data={}, headers={"HX-Request": "true"})
    assert response.status_code == 400


def test_hints_and_suggestions_of_an_unreachable_cluster_say_so_once(actions, kube_api, kube_provider):
    actions.login()
    provider = kube_provider(kube_api)
    kube_api.stop()
    names = actions.htmx_get(f"/manage/providers/{provider.id}/cluster-names").get_data(as_text=True)
    assert names.count("No suggestions from the cluster: Connection to ") == 1
    assert "was refused" in names and "HTTPSConnectionPool" not in names and "Max retries" not in names
