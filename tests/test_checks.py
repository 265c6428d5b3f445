"""Health checks end to end: a provider in the database, its cluster a Kubernetes API over HTTP."""
import json
import re
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from provider_admin.checks import check_now
from provider_admin.checks.claims import claim_due
from provider_admin.checks.sweeper import Sweeper
from provider_admin.extensions import db
from provider_admin.models import Provider, ProviderCheck, utcnow


@pytest.fixture
def app_config():
    return {"CHECK_TIMEOUT": 1.0, "CHECK_INTERVAL": 30, "CHECK_BACKOFF_MAX": 300,
            "CHECK_FAILURE_THRESHOLD": 2, "CHECK_POOL_SIZE": 4}


def scheduled(app, provider):
    """Run one scheduled check of `provider` the way the sweeper does."""
    from provider_admin.checks import apply_result, job_for
    from provider_admin.checks.jobs import run

    result, duration = run(job_for(provider, full=False), app.config["CHECK_TIMEOUT"])
    apply_result(provider.id, result, trigger="scheduled", full=False, duration_ms=duration)
    db.session.commit()
    db.session.refresh(provider)
    return result


def test_deployed_cluster_is_ready(app, kube_api_tls, kube_provider):
    kube_api_tls.deploy_marker("east")
    provider = kube_provider(kube_api_tls)
    result = check_now(provider)
    assert result.ok, result.message
    assert provider.status == "ready"
    assert provider.kube_version == "v1.33.1"
    assert provider.last_ready_at is not None and provider.last_checked_at is not None
    assert provider.consecutive_failures == 0
    check = db.session.scalar(sa.select(ProviderCheck))
    assert (check.ok, check.trigger) == (True, "manual")


def test_not_deployed_is_pending_with_the_fix(app, kube_api_tls, kube_provider):
    provider = kube_provider(kube_api_tls)
    check_now(provider)
    assert provider.status == "pending"
    assert "bootstrap manifest" in provider.status_message


def test_marker_of_another_provider_is_an_error(app, kube_api_tls, kube_provider):
    kube_api_tls.deploy_marker("west")
    provider = kube_provider(kube_api_tls)
    check_now(provider)
    assert provider.status == "error"
    assert "already used by provider west" in provider.status_message


def test_ready_turns_error_only_after_the_threshold(app, kube_api_tls, kube_provider):
    kube_api_tls.deploy_marker("east")
    provider = kube_provider(kube_api_tls)
    check_now(provider)
    assert provider.status == "ready"
    kube_api_tls.stop()
    scheduled(app, provider)
    assert provider.status == "ready"
    assert provider.status_message.startswith("Last check failed (1 of 2 before Error)")
    scheduled(app, provider)
    assert provider.status == "error" and provider.status_category == "unreachable"
    kube_api_tls.start()
    scheduled(app, provider)
    assert provider.status == "ready" and provider.status_message is None


def test_manual_check_applies_a_failure_at_once(app, kube_api_tls, kube_provider):
    kube_api_tls.deploy_marker("east")
    provider = kube_provider(kube_api_tls)
    check_now(provider)
    kube_api_tls.respond("get /version", 401)
    kube_api_tls.respond("get /version/", 401)
    check_now(provider)
    assert provider.status == "error" and provider.status_category == "unauthorized"


def test_failures_back_off_up_to_the_cap(app, kube_api, kube_provider):
    provider = kube_provider(kube_api)
    kube_api.stop()
    waits = []
    for _ in range(6):
        scheduled(app, provider)
        waits.append(round((provider.next_check_at - provider.last_checked_at).total_seconds()))
    assert waits == [30, 60, 120, 240, 300, 300]


def test_missing_permissions_are_named(app, kube_api_tls, kube_provider):
    kube_api_tls.deploy_marker("east")
    kube_api_tls.deny("create", "persistentvolumeclaims")
    provider = kube_provider(kube_api_tls)
    check_now(provider)
    assert provider.status == "error"
    assert "create persistentvolumeclaims" in provider.status_message


def test_routine_check_of_a_ready_provider_costs_three_requests(app, kube_api_tls, kube_provider):
    kube_api_tls.deploy_marker("east")
    provider = kube_provider(kube_api_tls)
    check_now(provider)
    before = len(kube_api_tls.requests)
    scheduled(app, provider)
    assert len(kube_api_tls.requests) - before <= 3


def test_history_is_bounded(app, kube_api, kube_provider):
    app.config["CHECK_HISTORY"] = 3
    provider = kube_provider(kube_api)
    for _ in range(5):
        scheduled(app, provider)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ProviderCheck)) == 3


def test_a_check_does_not_conflict_with_an_open_edit_form(app, kube_api, kube_provider):
    provider = kube_provider(kube_api)
    version = provider.version
    scheduled(app, provider)
    assert provider.version == version


def test_claims_are_exclusive_and_expire(app, make_provider):
    for i in range(3):
        make_provider(f"p{i}")
    first = claim_due("a", 10, interval=30, lease=60, permissions_every=300)
    assert len(first) == 3
    assert claim_due("b", 10, interval=30, lease=60, permissions_every=300) == []
    # The claimant died: its leases and the interval run out, another takes over.
    db.session.execute(sa.update(Provider).values(claimed_until=utcnow() - timedelta(seconds=1),
                                                  next_check_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    assert len(claim_due("b", 10, interval=30, lease=60, permissions_every=300)) == 3


def test_a_dead_cluster_does_not_delay_the_others(app, kube_api, kube_provider):
    app.config["CHECK_TIMEOUT"] = 2.0
    kube_api.deploy_marker("healthy")
    kube_api.slow("get /version", 30)
    kube_api.slow("get /version/", 30)
    dead = kube_provider(kube_api, name="dead")
    with type(kube_api)() as other:
        other.deploy_marker("healthy")
        healthy = kube_provider(other, name="healthy")
        sweeper = Sweeper(app, worker="test")
        try:
            started = time.monotonic()
            assert sweeper.tick() == 2
            while sweeper.checked < 1:
                time.sleep(0.02)
            first_done = time.monotonic() - started
            while sweeper.checked < 2:
                time.sleep(0.02)
            all_done = time.monotonic() - started
        finally:
            sweeper.shutdown()
    db.session.expire_all()
    assert db.session.get(Provider, healthy.id).status == "ready"
    assert db.session.get(Provider, dead.id).status_category == "unreachable"
    assert first_done < 1.5  # the healthy one did not wait for the dead one
    assert all_done < 2.0 + 1.5  # the dead one cost about its timeout


def test_badge_poll_is_204_when_nothing_changed_and_sends_only_changed_rows(
        app, actions, client, kube_api, kube_provider):
    actions.login()
    a, b = kube_provider(kube_api, name="a"), kube_provider(kube_api, name="b")
    page = client.get("/manage/providers/").text
    fp = re.search(r'"fp": "([^"]+)"', page).group(1)
    known = f"{a.id}.{a.display_version},{b.id}.{b.display_version}"
    poll = client.get("/manage/providers/status", query_string={"fp": fp, "known": known, "list": 1},
                      headers={"HX-Request": "true"})
    assert poll.status_code == 204 and poll.data == b""
    kube_api.deploy_marker("b")
    check_now(b)
    poll = client.get("/manage/providers/status", query_string={"fp": fp, "known": known, "list": 1},
                      headers={"HX-Request": "true"})
    assert poll.status_code == 200
    assert f'id="provider-row-{b.id}"' in poll.text and f'id="provider-row-{a.id}"' not in poll.text
    assert ">Ready<" in poll.text and 'hx-swap-oob="true"' in poll.text
    new_fp = re.search(r'"fp": "([^"]+)"', poll.text).group(1)
    assert new_fp != fp
    # A provider added elsewhere makes the list reload itself.
    kube_provider(kube_api, name="c")
    poll = client.get("/manage/providers/status", query_string={"fp": new_fp, "known": known, "list": 1},
                      headers={"HX-Request": "true"})
    assert json.loads(poll.headers["HX-Trigger"]) == {"providersChanged": True}


def test_badge_poll_needs_a_manager(actions, client):
    actions.login("member")
    assert client.get("/manage/providers/status").status_code == 403


def test_check_now_button_updates_the_row(app, actions, kube_api, kube_provider):
    actions.login()
    kube_api.deploy_marker("east")
    provider = kube_provider(kube_api)
    row = actions.post(f"/manage/providers/{provider.id}/check", htmx=True)
    assert row.status_code == 200
    assert ">Ready<" in row.text and "v1.33.1" in row.text


def test_provider_page_shows_history_and_offers_the_manifest(app, actions, client, kube_api,
                                                             kube_provider):
    actions.login()
    provider = kube_provider(kube_api)
    check_now(provider)
    page = client.get(f"/manage/providers/{provider.id}").text
    assert "Check history" in page and "not deployed" in page
    manifest = client.get(f"/manage/providers/{provider.id}/manifest.yaml")
    assert manifest.status_code == 200
    assert "attachment" in manifest.headers["Content-Disposition"]
    assert "kind: ConfigMap" in manifest.text and "provider-admin-marker" in manifest.text


def test_deploy_applies_the_manifest_and_turns_ready(app, actions, kube_api, kube_provider):
    actions.login()
    provider = kube_provider(kube_api)
    response = actions.post(f"/manage/providers/{provider.id}/deploy")
    assert response.status_code == 303
    assert kube_api.get("v1/configmaps", "ws", "provider-admin-marker")["data"] == {"provider": "east"}
    db.session.refresh(provider)
    assert provider.status == "ready", provider.status_message


def test_saving_new_credentials_rechecks_at_once(app, actions, kube_api_tls, kube_provider):
    actions.login()
    kube_api_tls.deploy_marker("east")
    provider = kube_provider(kube_api_tls, token="old")
    kube_api_tls.respond("get /version", 401)
    kube_api_tls.respond("get /version/", 401)
    check_now(provider)
    assert provider.status_category == "unauthorized"
    form = {"name": "east", "cluster_address": provider.cluster_address, "namespace": "ws",
            "ca_certificate": provider.ca_cert, "token": "new-token", "version": str(provider.version),
            "affinity": ""}
    kube_api_tls.respond("get /version", 200, body={"gitVersion": "v1.33.1", "major": "1", "minor": "33"})
    kube_api_tls.respond("get /version/", 200, body={"gitVersion": "v1.33.1", "major": "1", "minor": "33"})
    assert actions.post(f"/manage/providers/{provider.id}/edit", form).status_code == 303
    db.session.refresh(provider)
    assert provider.status == "ready", provider.status_message
    assert any(h.get("Authorization") == "Bearer new-token" for h in kube_api_tls.request_headers())


def test_edit_form_suggests_what_exists_in_the_cluster(app, actions, kube_api, kube_provider):
    actions.login()
    kube_api.put("storage.k8s.io/v1/storageclasses", None, "fast-ssd", {"kind": "StorageClass",
                                                                       "provisioner": "x"})
    kube_api.put("v1/serviceaccounts", "ws", "workspace-sa", {"kind": "ServiceAccount"})
    provider = kube_provider(kube_api)
    form = actions.client.get(f"/manage/providers/{provider.id}/edit").text
    assert f"/manage/providers/{provider.id}/cluster-names" in form
    names = actions.htmx_get(f"/manage/providers/{provider.id}/cluster-names",
                             query_string={"storage_class": "slow", "service_account": "workspace-sa"})
    assert names.status_code == 200
    assert '<option value="fast-ssd">' in names.text and '<option value="workspace-sa">' in names.text
    assert "“slow” does not exist in the cluster; it has: fast-ssd" in names.text
    assert "“workspace-sa” does not exist" not in names.text


def test_suggestions_say_why_they_are_missing(app, actions, kube_api, kube_provider):
    actions.login()
    kube_api.respond("get /apis/storage.k8s.io/v1/storageclasses", 403)
    provider = kube_provider(kube_api)
    names = actions.htmx_get(f"/manage/providers/{provider.id}/cluster-names")
    assert "may not list these" in names.text
