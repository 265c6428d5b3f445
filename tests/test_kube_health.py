"""The health check against a Kubernetes API over real HTTP(S), one category at a time."""
import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
import trustme

from provider_admin.kube import CATEGORIES, Connection, check, required_permissions
from tests.kube import KUBE_VERSION, TOKEN, KubeAPI, kube_api, kube_api_tls, provider_uid  # noqa: F401

MARKER_PATH = "/api/v1/namespaces/ws/configmaps/provider-admin-marker"
ALL_PERMISSIONS = [(p.verb, p.resource) for p in required_permissions(needs_service_accounts=True)]


def jwt(**claims) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def run(conn: Connection, **kwargs):
    kwargs.setdefault("provider_name", "p1")
    kwargs.setdefault("provider_uid", provider_uid(kwargs["provider_name"]))
    return check(conn, **kwargs)


@pytest.fixture
def deployed(kube_api):
    kube_api.deploy_marker("p1")
    return kube_api


def test_routine_check_of_a_healthy_cluster_is_ready_in_three_requests(deployed):
    result = run(deployed.connection())

    assert (result.ok, result.category) == (True, "ready")
    assert result.kube_version == KUBE_VERSION
    assert KUBE_VERSION in result.message and "namespace ws" in result.message
    assert result.requests == 3
    assert deployed.requests == ["GET /version", "GET /readyz", f"GET {MARKER_PATH}"]
    assert all(h.get("Authorization") == f"Bearer {TOKEN}" for h in deployed.request_headers())


def test_full_check_reviews_every_needed_permission_in_the_namespace(deployed):
    deployed.put("storage.k8s.io/v1/storageclasses", None, "fast", {"provisioner": "x"})
    deployed.put("v1/serviceaccounts", "ws", "workspaces")

    result = run(deployed.connection(), full=True, storage_class="fast",
                 service_account="workspaces", needs_service_accounts=True)

    assert result.category == "ready", result.message
    assert deployed.reviews() == [(verb, resource, "ws") for verb, resource in ALL_PERMISSIONS]
    assert len(ALL_PERMISSIONS) == 14
    assert result.requests == 3 + 14 + 2 == len(deployed.requests)
    assert deployed.requests[-2:] == ["GET /apis/storage.k8s.io/v1/storageclasses/fast",
                                      "GET /api/v1/namespaces/ws/serviceaccounts/workspaces"]


def test_service_account_permissions_are_only_reviewed_when_needed(deployed):
    result = run(deployed.connection(), full=True, needs_service_accounts=False)

    assert result.category == "ready"
    reviewed = {resource for _, resource, _ in deployed.reviews()}
    assert reviewed == {"pods", "persistentvolumeclaims", "configmaps", "events"}
    assert len(deployed.reviews()) == 10


@pytest.mark.parametrize("verb,resource", ALL_PERMISSIONS)
def test_each_missing_permission_is_named_by_verb_and_resource(deployed, verb, resource):
    deployed.deny(verb, resource)

    result = run(deployed.connection(), full=True, needs_service_accounts=True)

    assert result.category == "missing_permission"
    assert result.missing_permissions == [f"{verb} {resource}"]
    assert result.message == (f"missing permission: {verb} {resource} in namespace ws"
                              " — apply the bootstrap manifest.")


def test_several_missing_permissions_are_all_listed(deployed):
    deployed.deny("create", "persistentvolumeclaims")
    deployed.deny("list", "events")

    result = run(deployed.connection(), full=True)

    assert result.missing_permissions == ["create persistentvolumeclaims", "list events"]
    assert "create persistentvolumeclaims in namespace ws; missing permission: list events" \
        in result.message


def test_refused_connection_is_unreachable_and_recovers(deployed):
    conn = deployed.connection()
    deployed.stop()

    result = run(conn)

    address = conn.server.removeprefix("http://")
    assert result.category == "unreachable"
    assert f"Connection to {address} was refused" in result.message
    assert result.requests == 1
    deployed.start()
    assert run(conn).category == "ready"


def test_dns_failure_is_unreachable_and_names_the_host():
    result = run(Connection(server="https://no-such-cluster.invalid:6443", namespace="ws",
                            token="t"), timeout=2)

    assert result.category == "unreachable"
    assert "Cannot resolve the host name no-such-cluster.invalid (DNS" in result.message


def test_slow_server_times_out_once_without_retries(deployed):
    deployed.slow("get /version", 3)

    started = time.monotonic()
    result = run(deployed.connection(), timeout=0.5)
    elapsed = time.monotonic() - started

    assert result.category == "timeout"
    assert "accepted the connection but did not answer within 0.5 s (no answer" in result.message
    assert elapsed < 0.5 + 1.0  # four attempts (urllib3's default) would take 2 s
    assert deployed.requests == ["GET /version"]


def test_timeout_applies_to_every_call(deployed):
    deployed.slow(f"get {MARKER_PATH}", 3)

    started = time.monotonic()
    result = run(deployed.connection(), timeout=0.4)

    assert result.category == "timeout"
    assert time.monotonic() - started < 0.4 + 1.0
    assert result.kube_version == KUBE_VERSION
    assert deployed.requests.count(f"GET {MARKER_PATH}") == 1


def test_tls_with_the_right_ca_is_ready(kube_api_tls):
    kube_api_tls.deploy_marker("p1")

    result = run(kube_api_tls.connection())

    assert kube_api_tls.url.startswith("https://")
    assert result.category == "ready", result.message


@pytest.mark.parametrize("ca", ["other", None], ids=["other-ca", "system-trust"])
def test_tls_certificate_from_another_ca_fails_verification(kube_api_tls, ca):
    ca_pem = trustme.CA().cert_pem.bytes().decode() if ca else None

    result = run(kube_api_tls.connection(ca_cert=ca_pem))

    assert result.category == "tls"
    assert "TLS certificate verification failed" in result.message
    assert "set the cluster's CA certificate" in result.message
    assert kube_api_tls.requests == []


def test_invalid_ca_pem_is_a_tls_error_before_any_request(kube_api_tls):
    result = run(kube_api_tls.connection(ca_cert="not a certificate"))

    assert result.category == "tls"
    assert "not a valid PEM certificate" in result.message
    assert result.requests == 0


def test_client_certificate_is_presented():
    with KubeAPI(tls=True, require_client_cert=True) as api:
        api.deploy_marker("p1")
        cert, key = api.issue_client_cert()

        with_cert = run(api.connection(token=None, client_cert=cert, client_key=key))
        without = run(api.connection(token=None))
        other_ca = trustme.CA().cert_pem.bytes().decode()
        unverified = run(api.connection(token=None, client_cert=cert, client_key=key,
                                        ca_cert=other_ca))

    assert with_cert.category == "ready", with_cert.message
    assert unverified.category == "tls"
    assert without.category in ("tls", "unreachable")
    assert not without.ok


def test_rejected_token_is_unauthorized(deployed):
    deployed.respond("get /version", 401, "Unauthorized")

    result = run(deployed.connection())

    assert result.category == "unauthorized"
    assert "rejected the credentials (401" in result.message
    assert "paste a current service account token" in result.message


def test_forbidden_basic_call_is_forbidden(deployed):
    deployed.respond(f"get {MARKER_PATH}", 403,
                     'configmaps "provider-admin-marker" is forbidden: User cannot get')

    result = run(deployed.connection())

    assert result.category == "forbidden"
    assert "403 on get configmaps in namespace ws" in result.message
    assert 'configmaps "provider-admin-marker" is forbidden' in result.message
    assert "apply the bootstrap manifest" in result.message


def test_forbidden_version_is_forbidden(deployed):
    deployed.respond("get /version", 403)

    assert run(deployed.connection()).category == "forbidden"


def test_server_error_is_api_unhealthy(deployed):
    deployed.respond("get /version", 500, "etcdserver: request timed out")

    result = run(deployed.connection())

    assert result.category == "api_unhealthy"
    assert "etcdserver: request timed out" in result.message
    assert "500" in result.message


def test_readyz_failure_is_api_unhealthy_with_a_short_message(deployed):
    html = "<html><body>" + "<p>[-]etcd failed: reason withheld</p>" * 500 + "</body></html>"
    deployed.respond("get /readyz", 500, body=html.encode())

    result = run(deployed.connection())

    assert result.category == "api_unhealthy"
    assert "GET /readyz answered 500: [-]etcd failed" in result.message
    assert "<" not in result.message and len(result.message) < 400
    assert result.kube_version == KUBE_VERSION


def test_cluster_without_readyz_is_ready_with_a_warning(deployed):
    deployed.respond("get /readyz", 404, "the server could not find the requested resource")

    result = run(deployed.connection())

    assert result.category == "ready"
    assert result.warnings == ["The API server has no /readyz endpoint (Kubernetes older than "
                               "1.16?), so its readiness was not checked."]


def test_address_that_is_not_an_api_server_is_an_error(deployed):
    deployed.respond("get /version", 404, body=b"<html>Not Found</html>")

    result = run(deployed.connection())

    assert result.category == "bad_answer"
    assert "answered 404 to GET /version: it does not look like a Kubernetes API server" \
        in result.message


def test_missing_namespace_is_not_deployed(kube_api):
    result = run(kube_api.connection())

    assert result.category == "not_deployed"
    assert "namespace ws does not exist" in result.message
    assert "Apply the bootstrap manifest" in result.message


def test_namespace_without_marker_is_not_deployed(kube_api):
    kube_api.put("v1/namespaces", None, "ws")

    result = run(kube_api.connection())

    assert result.category == "not_deployed"
    assert "namespace ws has no ConfigMap provider-admin-marker" in result.message


def test_marker_of_another_provider_is_a_conflict(kube_api):
    kube_api.deploy_marker("other <b>provider</b>")

    result = run(kube_api.connection())

    assert result.category == "marker_conflict"
    assert "Namespace ws is already used by provider other <b>provider</b>" in result.message


def test_missing_storage_class(deployed):
    result = run(deployed.connection(), full=True, storage_class="fast")

    assert result.category == "storage_class_missing"
    assert "Storage class fast does not exist" in result.message


def test_forbidden_storage_class_is_only_a_warning(deployed):
    deployed.respond("get /apis/storage.k8s.io/v1/storageclasses/fast", 403)

    result = run(deployed.connection(), full=True, storage_class="fast")

    assert result.category == "ready"
    assert result.warnings == [
        "Could not verify storage class fast: the credentials may not read storage classes "
        "(apply the bootstrap manifest's ClusterRole to allow it)."
    ]


def test_missing_service_account(deployed):
    result = run(deployed.connection(), full=True, service_account="builder")

    assert result.category == "service_account_missing"
    assert "Service account builder does not exist in namespace ws" in result.message


def test_routine_check_skips_storage_class_and_service_account(deployed):
    result = run(deployed.connection(), storage_class="fast", service_account="builder")

    assert result.category == "ready"
    assert result.requests == 3


def test_expired_token_fails_before_any_request(deployed):
    expired = datetime.now(timezone.utc) - timedelta(hours=1)
    token = jwt(sub="system:serviceaccount:ws:provider-admin", exp=int(expired.timestamp()))

    result = run(deployed.connection(token=token))

    assert result.category == "token_expired"
    assert result.requests == 0 and deployed.requests == []
    assert result.token_expires_at == expired.replace(microsecond=0)
    assert "token expired on" in result.message


def test_token_expiring_soon_is_ready_with_a_warning(deployed):
    soon = datetime.now(timezone.utc) + timedelta(days=3, hours=1)

    result = run(deployed.connection(token=jwt(exp=int(soon.timestamp()))))

    assert result.category == "ready"
    assert result.token_expires_at == soon.replace(microsecond=0)
    assert result.warnings[0].startswith("The token expires in 3 days")


def test_non_kubernetes_answer_is_an_error_not_an_exception(deployed):
    deployed.respond("get /version", 200, body=b"<html>" + b"x" * 5000 + b"</html>")

    result = run(deployed.connection())

    assert result.category == "bad_answer"
    assert "is not a Kubernetes version" in result.message
    assert len(result.message) < 400


def test_unexpected_exception_becomes_an_error(deployed, monkeypatch):
    from provider_admin.kube import health

    monkeypatch.setattr(health, "required_permissions", lambda **kw: 1 / 0)

    result = run(deployed.connection(), full=True)

    assert result.category == "error"
    assert result.message == "Unexpected error while checking: division by zero"


def test_every_category_is_known():
    assert set(CATEGORIES) == {
        "ready", "unreachable", "tls", "unauthorized", "token_expired", "forbidden",
        "missing_permission", "api_unhealthy", "not_deployed", "marker_conflict",
        "storage_class_missing", "service_account_missing", "address_refused", "timeout",
        "redirected", "bad_answer", "too_large", "error"}


def test_a_dead_cluster_does_not_delay_a_healthy_one_in_a_thread_pool(deployed):
    with KubeAPI() as dead:
        dead.slow("get /version", 5)
        with ThreadPoolExecutor(4) as pool:
            slow = pool.submit(run, dead.connection(), timeout=1.5)
            fast = [pool.submit(run, deployed.connection(), timeout=1.5) for _ in range(3)]
            fast_results = [f.result() for f in fast]
            slow_still_waiting = not slow.done()
            slow_result = slow.result()

    assert [r.category for r in fast_results] == ["ready"] * 3
    assert slow_still_waiting
    assert slow_result.category == "timeout"
