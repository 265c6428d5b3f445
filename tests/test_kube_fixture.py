"""The test Kubernetes API itself: the kmock 0.8 gaps that tests/kube.py fills."""
import json
import urllib.error
import urllib.request

import pytest

from tests.kube import KUBE_VERSION, kube_api  # noqa: F401

REVIEWS = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


def call(api, method: str, path: str, body: dict | None = None) -> tuple[int, dict | str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(api.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


@pytest.mark.parametrize("path", ["/version", "/version/", "/api/", "/apis/", "/api", "/apis"])
def test_discovery_paths_answer_with_and_without_trailing_slash(kube_api, path):
    status, _ = call(kube_api, "GET", path)

    assert status == 200


def test_version_and_readyz(kube_api):
    assert call(kube_api, "GET", "/version/")[1]["gitVersion"] == KUBE_VERSION
    assert call(kube_api, "GET", "/readyz") == (200, "ok")


def test_namespaces_can_be_created_read_and_listed(kube_api):
    assert call(kube_api, "GET", "/api/v1/namespaces/ws")[0] == 404

    created = call(kube_api, "POST", "/api/v1/namespaces", {"metadata": {"name": "ws"}})

    assert created[0] in (200, 201)
    assert call(kube_api, "GET", "/api/v1/namespaces/ws")[1]["metadata"]["name"] == "ws"
    listed = call(kube_api, "GET", "/api/v1/namespaces")[1]["items"]
    assert [n["metadata"]["name"] for n in listed] == ["ws"]
    assert call(kube_api, "POST", "/api/v1/namespaces", {"metadata": {"name": "ws"}})[0] == 409


def test_access_reviews_are_answered_every_time_and_not_stored(kube_api):
    review = {"spec": {"resourceAttributes": {"verb": "create", "resource": "pods"}}}
    kube_api.deny("create", "pods")

    first = call(kube_api, "POST", REVIEWS, review)
    kube_api.allow("create", "pods")
    second = call(kube_api, "POST", REVIEWS, review)

    assert (first[0], first[1]["status"]["allowed"]) == (201, False)
    assert (second[0], second[1]["status"]["allowed"]) == (201, True)


def test_scripted_responses_override_and_later_ones_win(kube_api):
    kube_api.respond("get /readyz", 500, body=b"etcd failed")
    kube_api.respond("get /readyz", 503, body=b"shutting down")

    assert call(kube_api, "GET", "/readyz") == (503, "shutting down")
