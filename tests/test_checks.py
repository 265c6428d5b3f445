"""Health checks end to end: a provider in the database, its cluster a Kubernetes API over HTTP."""
import json
import re
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from provider_admin.checks import check_now, job_for
from provider_admin.checks.claims import claim_due
from provider_admin.checks.jobs import run
from provider_admin.checks.results import Outcome, save_results
from provider_admin.checks.sweeper import Sweeper
from provider_admin.extensions import db
from provider_admin.kube import client as kube_client
from provider_admin.models import Provider, ProviderCheck, utcnow

# These tests read and change the database directly, in the app's context.
pytestmark = pytest.mark.usefixtures("app_context")


@pytest.fixture
def app_config():
    return {"CHECK_TIMEOUT": 1.0, "CHECK_INTERVAL": 30, "CHECK_BACKOFF_MAX": 300,
            "CHECK_FAILURE_THRESHOLD": 2, "CHECK_POOL_SIZE": 4}


def scheduled(app, provider):
    """Run one scheduled check of `provider` the way the sweeper does."""
    from provider_admin.checks import apply_result, job_for
    from provider_admin.checks.jobs import run

    job = job_for(provider, full=False)
    result, duration = run(job, app.config["CHECK_TIMEOUT"])
    apply_result(provider.id, result, trigger="scheduled", full=False, duration_ms=duration,
                 generation=job.generation)
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


def test_check_now_leaves_the_provider_loaded_for_after_its_session(app, kube_api, kube_provider):
    """Whoever asked reads the new status from the object, also once the session is gone."""
    kube_api.deploy_marker("east")
    provider = kube_provider(kube_api)
    assert check_now(provider).ok
    db.session.remove()
    assert (provider.status, provider.kube_version) == ("ready", "v1.33.1")


def test_check_now_of_a_provider_deleted_meanwhile_answers_none(app, kube_api, kube_provider):
    provider = kube_provider(kube_api)
    with db.engine.begin() as another:  # another request's delete, outside this session
        another.execute(sa.delete(Provider.__table__).where(Provider.__table__.c.id == provider.id))
    assert check_now(provider) is None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ProviderCheck)) == 0


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
    assert db.session.get(Provider, dead.id).status_category == "timeout"
    assert first_done < 1.5  # the healthy one did not wait for the dead one
    assert all_done < 2.0 + 1.5  # the dead one cost about its timeout


def test_a_scheduled_check_reaches_the_badge_poll(app, actions, client, kube_api, kube_provider):
    actions.login()
    later = utcnow() + timedelta(hours=1)
    a = kube_provider(kube_api, name="a", next_check_at=later)
    b = kube_provider(kube_api, name="b")
    page = client.get("/manage/providers/").text
    url = re.search(r'<div hx-get="([^"]+)" hx-trigger="every', page).group(1).replace("&amp;", "&")
    fp = re.search(r'"fp": "([^"]+)"', page).group(1)
    known = ",".join(".".join(row) for row in re.findall(
        r'data-provider-id="(\d+)" data-version="(\d+)" data-workspaces="(\d+)"', page))
    poll = client.get(url, query_string={"fp": fp}, headers={"HX-Request": "true"})
    assert poll.status_code == 204
    kube_api.deploy_marker("b")
    sweeper = Sweeper(app, worker="test")
    try:
        assert sweeper.tick() == 1  # b only: a is not due
        wait_for(lambda: sweeper.checked == 1)
    finally:
        sweeper.shutdown()
    poll = client.get(url, query_string={"fp": fp}, headers={"HX-Request": "true"})
    assert json.loads(poll.headers["HX-Trigger"]) == {"providerStatusStale": True}
    rows = actions.post(url, {"fp": fp, "known": known}, htmx=True)
    assert f'id="provider-row-{b.id}"' in rows.text and f'id="provider-row-{a.id}"' not in rows.text
    assert ">Ready<" in rows.text


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
    marker = kube_api.get("v1/configmaps", "ws", "provider-admin-marker")["data"]
    assert (marker["provider"], marker["provider-uid"]) == ("east", provider.uid)
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


# The sweep at scale: claims, batched results, clients kept --------------------------------

def ready_providers(kube_api, kube_provider, count):
    """`count` deployed, Ready providers whose permissions were just checked (routine checks)."""
    providers = []
    for i in range(count):
        kube_api.deploy_marker(f"p{i:02}", namespace=f"ns{i:02}")
        providers.append(kube_provider(kube_api, name=f"p{i:02}", namespace=f"ns{i:02}",
                                       status="ready", last_permissions_check_at=utcnow()))
    return providers


def scheduled_checks():
    """provider id -> number of scheduled checks in the history."""
    db.session.expire_all()
    return dict(db.session.execute(
        sa.select(ProviderCheck.provider_id, sa.func.count())
        .where(ProviderCheck.trigger == "scheduled").group_by(ProviderCheck.provider_id)).all())


def wait_for(condition, seconds=15.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def statements_during(fn):
    """The SQL statements and commits `fn` sends (an executemany counts once), and its value."""
    sent = []

    def record(conn, cursor, statement, parameters, context, executemany):
        sent.append(statement.split(None, 3)[:3])

    def commit(conn):
        sent.append(["COMMIT"])

    sa.event.listen(db.engine, "before_cursor_execute", record)
    sa.event.listen(db.engine, "commit", commit)
    try:
        value = fn()
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)
        sa.event.remove(db.engine, "commit", commit)
    return sent, value


def test_concurrent_ticks_never_check_a_provider_twice_in_one_interval(app, kube_api, kube_provider):
    providers = ready_providers(kube_api, kube_provider, 20)
    # Two schedulers on one database, each ticked by several threads at once.
    sweepers = [Sweeper(app, worker="a"), Sweeper(app, worker="b")]
    done = time.monotonic() + 3.0

    def hammer(sweeper):
        while time.monotonic() < done:
            sweeper.tick()
            time.sleep(0.001)

    threads = [threading.Thread(target=hammer, args=(s,)) for s in sweepers for _ in range(3)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for sweeper in sweepers:
            sweeper.shutdown()
    assert scheduled_checks() == {p.id: 1 for p in providers}
    assert sum(s.checked for s in sweepers) == 20
    db.session.expire_all()
    assert {p.status for p in db.session.scalars(sa.select(Provider))} == {"ready"}


def test_a_claim_is_one_statement_that_carries_what_the_check_needs(app, kube_api, kube_provider):
    kube_api.deploy_marker("east")
    provider = kube_provider(kube_api, status="ready", last_permissions_check_at=utcnow())
    sent, claimed = statements_during(
        lambda: claim_due("a", 10, interval=30, lease=60, permissions_every=300))
    assert [words[0] for words in sent] == ["WITH", "COMMIT"]  # WITH oldest_first ... UPDATE
    (row, full), = claimed
    assert full is False  # Ready, permissions just checked: a routine check
    job = job_for(row, full=full)
    assert job.connection.token == "test-token" and job.connection.namespace == "ws"
    result, _ = run(job, app.config["CHECK_TIMEOUT"])
    assert result.ok, result.message
    db.session.refresh(provider)
    assert provider.claimed_by == "a" and provider.next_check_at > utcnow() + timedelta(seconds=25)


def test_a_batch_of_results_is_five_statements_and_one_commit(app, kube_api, kube_provider):
    app.config["CHECK_HISTORY"] = 2
    kube_api.deploy_marker("a", namespace="ns-a")
    kube_api.deploy_marker("other", namespace="ns-b")
    kube_api.deploy_marker("other", namespace="ns-c")
    a, b, c = (kube_provider(kube_api, name=name, namespace=f"ns-{name}", status="ready",
                             last_permissions_check_at=utcnow(), consecutive_failures=failures)
               for name, failures in (("a", 0), ("b", 0), ("c", 1)))
    outcomes = []
    for row, full in claim_due("w", 10, interval=30, lease=60, permissions_every=300):
        result, duration = run(job_for(row, full=full), app.config["CHECK_TIMEOUT"])
        outcomes.append(Outcome(row.id, result, "scheduled", full, duration, "w",
                                generation=row.check_generation))
    sent, applied = statements_during(lambda: save_results(outcomes))
    assert applied == outcomes
    # c's change to Error is told in the same transaction: the provider read back, its last
    # notification, the targets, and the event (provider_admin.notifications.events).
    def told(words):
        return any("notification" in word for word in words) or words[1:3] == ["providers.id,", "providers.name,"]
    # Read, apply, history, the counts for /metrics, trim.
    assert [words[0] for words in sent if not told(words)] == ["SELECT", "UPDATE", "INSERT", "INSERT", "DELETE", "COMMIT"]
    assert [words[0] for words in sent if told(words)] == ["SELECT", "SELECT", "SELECT", "INSERT"]
    for provider in (a, b, c):
        db.session.refresh(provider)
    # The threshold counts per provider: b's first failure is not an outage yet, c's second is.
    assert (a.status, a.status_message, a.claimed_by) == ("ready", None, None)
    assert b.status == "ready" and b.status_message.startswith("Last check failed (1 of 2")
    assert c.status == "error" and "already used by provider other" in c.status_message
    for _ in range(2):
        save_results(outcomes)
    assert scheduled_checks() == {a.id: 2, b.id: 2, c.id: 2}  # three written each, two kept
    db.session.refresh(b)
    assert b.status == "error" and b.consecutive_failures == 3


def refuse_history_of(provider_id):
    """A database that refuses to record this provider's checks (a trigger), as a full or
    broken table would; returns the statement that removes it again."""
    if db.engine.dialect.name == "postgresql":
        db.session.execute(sa.text(
            "CREATE FUNCTION refuse_check() RETURNS trigger AS $$ BEGIN "
            f"IF NEW.provider_id = {int(provider_id)} THEN RAISE EXCEPTION 'refused'; END IF; "
            "RETURN NEW; END $$ LANGUAGE plpgsql"))
        db.session.execute(sa.text("CREATE TRIGGER refuse_check BEFORE INSERT ON provider_checks "
                                   "FOR EACH ROW EXECUTE FUNCTION refuse_check()"))
        drop = "DROP TRIGGER refuse_check ON provider_checks; DROP FUNCTION refuse_check()"
    else:
        db.session.execute(sa.text(
            "CREATE TRIGGER refuse_check BEFORE INSERT ON provider_checks "
            f"WHEN NEW.provider_id = {int(provider_id)} BEGIN SELECT RAISE(ABORT, 'refused'); END"))
        drop = "DROP TRIGGER refuse_check"
    db.session.commit()
    return drop


def test_a_result_that_cannot_be_written_does_not_lose_the_others(app, kube_api, kube_provider,
                                                                   caplog):
    providers = ready_providers(kube_api, kube_provider, 3)
    drop = refuse_history_of(providers[1].id)
    try:
        claimed = claim_due("a", 10, interval=0.5, lease=0.5, permissions_every=300)
        outcomes = []
        for row, full in claimed:
            result, duration = run(job_for(row, full=full), app.config["CHECK_TIMEOUT"])
            outcomes.append(Outcome(row.id, result, "scheduled", full, duration, "a",
                                    generation=row.check_generation))
        written = save_results(outcomes)
    finally:
        db.session.rollback()
        db.session.execute(sa.text(drop))
        db.session.commit()
    assert {o.provider_id for o in written} == {providers[0].id, providers[2].id}
    assert f"could not write the check result of provider {providers[1].id}" in caplog.text
    assert scheduled_checks() == {providers[0].id: 1, providers[2].id: 1}
    lost = db.session.get(Provider, providers[1].id)
    assert lost.claimed_by == "a"  # still claimed: nobody checks it until the lease ends
    time.sleep(0.6)
    again = claim_due("b", 10, interval=30, lease=60, permissions_every=300)
    assert [row.id for row, _ in again] == [lost.id]


def test_the_sweeper_writes_results_that_came_in_together_in_one_batch(app, kube_api, kube_provider):
    providers = ready_providers(kube_api, kube_provider, 8)
    app.config["CHECK_POOL_SIZE"] = 8
    sweeper = Sweeper(app, worker="a")
    try:
        assert sweeper.tick() == 8
        # A slow database: the writer waits for it while every check finishes.
        with db.engine.connect() as blocker:
            if db.engine.dialect.name == "postgresql":
                blocker.execute(sa.text("LOCK TABLE provider_checks IN EXCLUSIVE MODE"))
            else:
                blocker.exec_driver_sql("BEGIN IMMEDIATE")
            wait_for(lambda: len(kube_api.requests) >= 3 * 8)
            time.sleep(0.2)
            sent, _ = statements_during(
                lambda: (blocker.rollback(), wait_for(lambda: sweeper.checked == 8)))
    finally:
        sweeper.shutdown()
    batches = [words for words in sent if words[:3] == ["INSERT", "INTO", "provider_checks"]]
    assert 1 <= len(batches) <= 2, sent
    assert scheduled_checks() == {p.id: 1 for p in providers}


def test_every_provider_keeps_its_client_between_checks(app, kube_api, kube_provider):
    providers = ready_providers(kube_api, kube_provider, 70)  # more than the default size
    clients = []
    try:
        for round in range(2):
            sweeper = Sweeper(app, worker="a")
            try:
                wait_for(lambda: (sweeper.tick(), sweeper.checked)[1] == 70, seconds=60)
            finally:
                sweeper.shutdown()
            clients.append(set(map(id, kube_client._cache._clients.values())))
            db.session.execute(sa.update(Provider).values(next_check_at=None))
            db.session.commit()
    finally:
        kube_client.size_client_cache(0)
    assert len(clients[0]) == 70 and clients[1] == clients[0]
    assert scheduled_checks() == {p.id: 2 for p in providers}


def test_a_claim_takes_no_more_than_its_limit(app, make_provider):
    # PostgreSQL once ran the LIMIT subquery of `IN (...)` again for each updated row and
    # claimed 33 providers for 4 free threads: the rest waited past their interval.
    for i in range(50):
        make_provider(f"p{i:02}")
    sizes = [len(claim_due("a", 4, interval=30, lease=60, permissions_every=300)) for _ in range(14)]
    assert sizes == [4] * 12 + [2, 0]
