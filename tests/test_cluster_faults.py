"""Clusters that misbehave (SPEC §11 Faults): slow, garbage, redirects, huge answers and
half-open connections each end a check within its timeout, with a category of their own,
and hold up no other provider's check.

The servers are real sockets on 127.0.0.1 (tests/bad_clusters.py) or the emulator. The
bounds are relative to the timeout, with a margin for a loaded machine; the slow faults
send a byte well within every single read's wait, so only a deadline on the whole check
ends them.
"""
import re
import time

import pytest

from provider_admin import ROOT, kube
from provider_admin.checks.sweeper import Sweeper
from provider_admin.extensions import db
from provider_admin.models import Provider, Role
from provider_admin.tokens import service as tokens

from .bad_clusters import BadCluster
from .kube import KUBE_VERSION, KubeAPI, provider_uid
from .tests_api import call

TIMEOUT = 1.5
MARGIN = 1.5  # a loaded machine's scheduling, never a second timeout
MARKER = "/api/v1/namespaces/ws/configmaps/provider-admin-marker"

# fault, where, category, what the message says
FAULTS = [
    ("silent", "/version", "timeout", "accepted the connection but did not answer within 1.5 s"),
    ("slow_headers", "/version", "timeout", "did not answer within 1.5 s"),
    ("slow_body", "/version", "timeout", "did not answer within 1.5 s"),
    ("slow_body", MARKER, "timeout", "did not answer within 1.5 s"),
    ("long_length", "/readyz", "timeout", "did not answer within 1.5 s"),
    ("no_handshake", "/version", "timeout", "the TLS handshake did not complete within 1.5 s"),
    ("slow_tls", "/version", "timeout", "the TLS handshake did not complete within 1.5 s"),
    ("hang_up", "/readyz", "unreachable", "accepted the connection and closed it without answering"),
    ("not_http", "/version", "bad_answer", "did not answer in HTTP (it sent: SSH-2.0-OpenSSH_9.2p1"),
    ("not_json", "/version", "bad_answer", "answered GET /version with something that is not a "
                                           "Kubernetes version (Welcome to nginx !"),
    ("not_json", MARKER, "bad_answer", "The answer to get configmaps in namespace ws is not a "
                                       "Kubernetes object (Welcome to nginx !"),
    ("truncated", "/version", "bad_answer", "broke off its answer (IncompleteRead(20 bytes read, "
                                            "480 more expected))"),
    ("short_length", "/version", "bad_answer", 'not a Kubernetes version ({"major": "1)'),
    ("many_headers", "/version", "bad_answer", "sent a malformed HTTP answer (got more than 100 headers)"),
    ("long_header", "/readyz", "bad_answer", "sent a malformed HTTP answer (got more than 65536 bytes"),
    ("bad_chunk", MARKER, "bad_answer", "sent a malformed chunked answer (a chunk size that is not "
                                        "a number)"),
    ("bad_gzip", "/version", "bad_answer", "sent an answer that cannot be decoded (Received response "
                                           "with content-encoding: gzip, but failed to decode it.)"),
    ("redirect", "/version", "redirected", "answered with a redirect (302) back to itself"),
    ("huge", "/version", "too_large", "The API server answered with more than 4 MiB"),
    ("endless_chunked", MARKER, "too_large", "The API server answered with more than 4 MiB"),
    ("gzip_bomb", "/readyz", "too_large", "The API server answered with more than 4 MiB"),
]
SLOW = {"silent", "slow_headers", "slow_body", "long_length", "no_handshake", "slow_tls"}


def run(conn: kube.Connection, **kwargs) -> tuple[kube.CheckResult, float]:
    started = time.monotonic()
    result = kube.check(conn, provider_name="p1", provider_uid=provider_uid("p1"), timeout=TIMEOUT,
                        **kwargs)
    return result, time.monotonic() - started


@pytest.mark.parametrize("fault, on, category, says", FAULTS,
                         ids=[f"{f[0]}-{f[1].rsplit('/', 1)[-1]}" for f in FAULTS])
def test_each_fault_ends_within_the_timeout_with_its_own_category(fault, on, category, says):
    with BadCluster(fault, on=on, drip=TIMEOUT / 6) as bad:
        result, elapsed = run(bad.connection())

    assert (result.category, result.ok) == (category, False), result.message
    assert says in result.message
    assert elapsed < TIMEOUT + MARGIN
    if fault in SLOW:
        assert elapsed >= TIMEOUT * 0.9  # it waited for the answer, then gave up
    assert len(result.message) < 400 and "<" not in result.message and "x" * 100 not in result.message
    assert result.requests == 1 + (on != "/version") + (on == MARKER)


def test_a_cluster_that_timed_out_is_ready_at_the_next_check_once_it_answers(kube_api):
    kube_api.deploy_marker("p1")
    conn = kube_api.connection()
    assert run(conn)[0].category == "ready"  # the client keeps its connection
    kube_api.slow(f"get {MARKER}", TIMEOUT * 3)

    assert run(conn)[0].category == "timeout"
    kube_api.unslow()
    result, elapsed = run(conn)

    assert result.category == "ready", result.message
    assert elapsed < MARGIN


@pytest.mark.parametrize("tls", [False, True])
def test_answers_that_close_the_connection_are_read_whole(tls):
    with BadCluster("closing", tls=tls) as bad:
        result, _ = run(bad.connection())

    assert result.category == "ready", result.message
    assert bad.requests == ["GET /version", "GET /readyz", f"GET {MARKER}"]


def test_the_timeout_is_for_the_whole_check_not_each_request(kube_api):
    """Each answer comes within the timeout; together they do not."""
    kube_api.deploy_marker("p1")
    for request in ("get /version", "get /readyz", f"get {MARKER}"):
        kube_api.slow(request, TIMEOUT * 0.6)

    result, elapsed = run(kube_api.connection())

    assert result.category == "timeout"
    assert result.kube_version == KUBE_VERSION  # the first answer came, the second was late
    assert TIMEOUT * 0.9 <= elapsed < TIMEOUT + MARGIN
    assert kube_api.requests == ["GET /version", "GET /readyz"]


def test_scheduling_hints_take_the_timeout_for_both_look_ups(kube_api):
    kube_api.slow("get /api/v1/nodes", TIMEOUT * 0.6)
    kube_api.slow("get /apis/storage.k8s.io/v1/storageclasses", TIMEOUT * 0.6)

    started = time.monotonic()
    found = kube.scheduling_hints(kube_api.connection(), node_selector=None, tolerations=None,
                                  storage_class=None, affinity_stored=None, timeout=TIMEOUT)

    assert time.monotonic() - started < TIMEOUT + MARGIN
    assert len(found) == 1 and "did not answer within 1.5 s" in found[0]


@pytest.mark.parametrize("location, says", [
    ("http://169.254.169.254/latest/meta-data/iam/security-credentials/",
     "to a cloud metadata address (169.254.169.254): http://169.254.169.254/latest/meta-data/"),
    ("http://[fe80::1]:6443/version", "to a link-local address (fe80::1)"),
    ("/version/", "back to itself (/version/)"),
    ("", "without saying where"),
    ("https://elsewhere.example/\x1b[2J" + "a" * 5000, "to https://elsewhere.example/ [2J" + "a" * 40),
])
def test_a_redirect_is_named_and_never_followed(location, says):
    with BadCluster("redirect", location=location or " ") as bad:
        result, _ = run(bad.connection())
        assert bad.requests == ["GET /version"]

    assert result.category == "redirected"
    assert says in result.message
    assert "never follows redirects" in result.message
    assert len(result.message) < 400 and "\x1b" not in result.message


def test_a_redirect_to_another_cluster_sends_it_nothing(kube_api):
    with KubeAPI() as elsewhere:
        kube_api.redirect("get /readyz", elsewhere.url + "/readyz", status=307)
        kube_api.deploy_marker("p1")
        result, _ = run(kube_api.connection())
        assert elsewhere.requests == []

    assert result.category == "redirected"
    assert f"answered with a redirect (307) to {elsewhere.url}/readyz" in result.message


def test_the_readme_explains_every_category():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Why a provider is in Error", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([a-z_]+)`", "".join(re.findall(r"^\| (.*?) \|", table, re.M))))

    assert documented == set(kube.CATEGORIES)
    assert {"timeout", "redirected", "bad_answer", "too_large"} <= documented


# A sweep with misbehaving clusters among healthy ones -------------------------------------

SWEEP_TIMEOUT = 3.0


def test_a_sweep_writes_the_healthy_results_without_waiting_for_the_bad_ones(app, kube_api,
                                                                          kube_provider):
    app.config.update(CHECK_TIMEOUT=SWEEP_TIMEOUT, CHECK_POOL_SIZE=len(FAULTS) + 8)
    healthy = []
    for i in range(5):
        kube_api.deploy_marker(f"healthy{i}", namespace=f"ws{i}")
        healthy.append(kube_provider(kube_api, name=f"healthy{i}", namespace=f"ws{i}").id)
    servers, bad = [], {}
    try:
        for i, (fault, on, category, says) in enumerate(FAULTS):
            name = f"bad{i}"
            servers.append(BadCluster(fault, on=on.replace("/ws/", f"/{name}/"), provider=name,
                                      namespace=name, drip=SWEEP_TIMEOUT / 6).__enter__())
            says = says.replace("1.5 s", f"{SWEEP_TIMEOUT:g} s").replace(" ws ", f" {name} ")
            bad[kube_provider(servers[-1], name=name, namespace=name).id] = (category, says)
        sweeper = Sweeper(app, worker="faults")
        try:
            started = time.monotonic()
            assert sweeper.tick() == len(healthy) + len(bad)
            healthy_done = wait_for(lambda: ready(healthy), SWEEP_TIMEOUT * 3) - started
            all_done = wait_for(lambda: sweeper.checked == len(healthy) + len(bad),
                                SWEEP_TIMEOUT * 3) - started
        finally:
            sweeper.shutdown()
    finally:
        for server in servers:
            server.__exit__(None, None, None)

    print(f"sweep: healthy written after {healthy_done:.2f} s, all after {all_done:.2f} s "
          f"(timeout {SWEEP_TIMEOUT:g} s)")
    assert healthy_done < SWEEP_TIMEOUT  # written before any slow fault's time ran out
    assert all_done < SWEEP_TIMEOUT + MARGIN  # the whole sweep: about one timeout
    db.session.expire_all()
    for provider_id, (category, says) in bad.items():
        provider = db.session.get(Provider, provider_id)
        assert (provider.status, provider.status_category) == ("error", category)
        assert says in provider.status_message


def ready(ids: list[int]) -> bool:
    db.session.expire_all()
    statuses = db.session.scalars(db.select(Provider.status).where(Provider.id.in_(ids))).all()
    db.session.rollback()
    return statuses == ["ready"] * len(ids)


def wait_for(condition, limit: float) -> float:
    """The time (monotonic) when `condition` held; fails after `limit` seconds."""
    until = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < until, "timed out waiting"
        time.sleep(0.02)
    return time.monotonic()


# Check now, on the page and in the API --------------------------------------------------------

@pytest.mark.parametrize("fault, category, says", [
    ("slow_body", "timeout", "did not answer within 1.5 s"),
    ("not_http", "bad_answer", "did not answer in HTTP (it sent: SSH-2.0-OpenSSH_9.2p1"),
    ("not_json", "bad_answer", "something that is not a Kubernetes version (Welcome to nginx !"),
    ("huge", "too_large", "The API server answered with more than 4 MiB"),
])
def test_check_now_on_the_page_answers_within_the_timeout_with_the_message(
        app, actions, kube_provider, fault, category, says):
    app.config["CHECK_TIMEOUT"] = TIMEOUT
    actions.login(Role.MANAGER.value)
    with BadCluster(fault, provider="east", drip=TIMEOUT / 6) as bad:
        provider = kube_provider(bad, name="east")
        started = time.monotonic()
        page = actions.post(f"/manage/providers/{provider.id}/check", {"from": "page"}, htmx=True)
        elapsed = time.monotonic() - started

    assert page.status_code == 200
    assert elapsed < TIMEOUT + MARGIN
    assert says in page.text.replace("&#34;", '"')
    assert "<script>alert" not in page.text and "x" * 100 not in page.text
    assert f"<td>{category.replace('_', ' ')}</td>" in page.text  # the check history's label
    db.session.expire_all()
    assert db.session.get(Provider, provider.id).status_category == category


def test_check_now_in_the_api_answers_within_the_timeout_with_the_category(app, actions,
                                                                            kube_provider):
    app.config["CHECK_TIMEOUT"] = TIMEOUT
    manager = actions.user(Role.MANAGER.value, username="ops")
    _, secret = tokens.create(manager, "script", 30, read_only=False)
    with BadCluster("slow_headers", provider="east", drip=TIMEOUT / 6) as bad:
        provider = kube_provider(bad, name="east")
        started = time.monotonic()
        answer = call(app.test_client(), "POST", f"/providers/{provider.id}/check", secret)
        elapsed = time.monotonic() - started

    assert answer.status_code == 200, answer.text
    assert elapsed < TIMEOUT + MARGIN
    status = answer.json["status"]
    assert (status["state"], status["category"]) == ("error", "timeout")
    assert "did not answer within 1.5 s" in status["message"]
