"""A check's result applies only to the settings it was computed for; a Pending provider is not
backed off; Check now answers where it was asked; the token's expiry is said once, one way."""
import re
import time
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from provider_admin.checks import check_now
from provider_admin.checks.sweeper import Sweeper
from provider_admin.extensions import db
from provider_admin.kube import token_expiry_phrase
from provider_admin.models import CHECKED_FIELDS, Provider, ProviderCheck, utcnow

from .test_checks import scheduled, wait_for
from .test_kube_health import jwt

# These tests read and change the database directly, in the app's context.
pytestmark = pytest.mark.usefixtures("app_context")

MARKER = "get /api/v1/namespaces/{}/configmaps/provider-admin-marker"
SLOW = 3.0  # seconds a slowed marker request takes: the save (and its own check) happens meanwhile, even on a loaded machine


def edit(actions, provider, **changes):
    """Save the provider's edit form with `changes`, as an admin does."""
    form = {"name": provider.name, "cluster_address": provider.cluster_address,
            "namespace": provider.namespace, "ca_certificate": provider.ca_cert or "",
            "version": str(provider.version), "affinity": "", **changes}
    response = actions.post(f"/manage/providers/{provider.id}/edit", form)
    assert response.status_code == 303, response.text
    db.session.expire_all()
    return db.session.get(Provider, provider.id)


def due_now(provider):
    db.session.execute(sa.update(Provider).where(Provider.id == provider.id).values(next_check_at=None))
    db.session.commit()


def history(trigger=None):
    query = sa.select(ProviderCheck).order_by(ProviderCheck.id)
    if trigger:
        query = query.where(ProviderCheck.trigger == trigger)
    db.session.expire_all()
    return db.session.scalars(query).all()


def a_check_under_way(app, kube_api, provider) -> Sweeper:
    """A scheduled check of `provider` that has started and will take SLOW seconds."""
    kube_api.slow(MARKER.format(provider.namespace), SLOW)
    due_now(provider)
    marker = MARKER.format(provider.namespace).replace("get", "GET", 1)
    asked = kube_api.requests.count(marker)
    sweeper = Sweeper(app, worker="slow")
    assert sweeper.tick() == 1  # claimed: the job carries the current generation
    wait_for(lambda: kube_api.requests.count(marker) > asked)  # it waits in the cluster now
    kube_api.unslow()  # the save's own check is quick
    return sweeper


@pytest.mark.parametrize("before, after", [("ready", "pending"), ("pending", "ready")])
def test_a_check_that_lands_after_a_save_is_superseded(app, actions, client, kube_api_tls,
                                                       kube_provider, before, after):
    # Ready moved to a namespace not deployed yet, or Pending moved to the deployed one.
    actions.login()
    kube_api_tls.deploy_marker("east", namespace="ws")
    old, new = ("ws", "empty") if before == "ready" else ("empty", "ws")
    provider = kube_provider(kube_api_tls, namespace=old)
    check_now(provider)
    assert provider.status == before
    sweeper = a_check_under_way(app, kube_api_tls, provider)
    try:
        provider = edit(actions, provider, namespace=new)
        assert provider.status == after  # the save's own check
        assert sweeper.checked == 0  # the old check is still under way
        wait_for(lambda: sweeper.checked == 1)
    finally:
        sweeper.shutdown()
    db.session.expire_all()
    provider = db.session.get(Provider, provider.id)
    assert (provider.status, provider.namespace, provider.claimed_by) == (after, new, None)
    late, = history("scheduled")
    assert late.superseded and late.ok == (before == "ready")
    assert not history("save")[0].superseded
    page = client.get(f"/manage/providers/{provider.id}").text
    assert page.count(">superseded</span>") == 1

    # The next check is of the new settings, and applies.
    kube_api_tls.deploy_marker("east", namespace="empty")
    checked_before = provider.last_checked_at
    scheduled(app, provider)
    assert provider.status == "ready" and provider.last_checked_at > checked_before
    assert not history("scheduled")[-1].superseded


def test_a_replaced_token_takes_what_was_derived_from_it_along(app, actions, client, kube_api_tls,
                                                               kube_provider):
    actions.login()
    kube_api_tls.deploy_marker("east")
    expiring = jwt(sub="system:serviceaccount:ws:provider-admin",
                   exp=int((utcnow() + timedelta(days=3, hours=1)).timestamp()))
    provider = kube_provider(kube_api_tls, token=expiring)
    check_now(provider)
    assert provider.status == "ready" and provider.token_expires_at is not None
    assert provider.status_warnings[0].startswith("The token expires in 3 days")
    sweeper = a_check_under_way(app, kube_api_tls, provider)  # with the old token
    try:
        provider = edit(actions, provider, token="new-token")  # not a JWT: no expiry known
        wait_for(lambda: sweeper.checked == 1)
    finally:
        sweeper.shutdown()
    db.session.expire_all()
    provider = db.session.get(Provider, provider.id)
    assert provider.status == "ready"
    assert (provider.token_expires_at, provider.status_warnings, provider.status_message) == \
        (None, None, None)
    assert history("scheduled")[0].superseded
    assert "expires" not in client.get(f"/manage/providers/{provider.id}").text
    assert "expires" not in client.get("/manage/providers/").text
    scheduled(app, provider)  # and the next checks keep it so
    assert (provider.token_expires_at, provider.status_warnings) == (None, None)


def test_a_new_token_set_without_the_form_still_drops_the_old_warnings(app, kube_api, kube_provider):
    # The rule lives with the model: any write of new credentials, whatever its path.
    kube_api.deploy_marker("east")
    provider = kube_provider(kube_api, token=jwt(exp=int((utcnow() + timedelta(hours=5)).timestamp())))
    check_now(provider)
    assert provider.status_warnings
    provider.credentials_encrypted = b"other"
    db.session.commit()
    assert provider.status_warnings is None


# A new value for each setting a check depends on.
NEW_VALUES = {
    "name": "renamed", "cluster_address": "https://other.example:6443", "ca_cert": "PEM",
    "credentials_encrypted": b"new", "namespace": "elsewhere", "storage_class": "fast",
    "service_account": "builder", "service_account_annotations": {"iam": "role"},
    "is_builtin": True, "external_ssh": True,
}


def test_each_setting_a_check_depends_on_is_tested_below():
    assert set(NEW_VALUES) == set(CHECKED_FIELDS)


@pytest.mark.parametrize("field, value", NEW_VALUES.items())
def test_every_setting_a_check_depends_on_starts_a_new_generation(app, make_provider, field, value):
    provider = make_provider(next_check_at=utcnow() + timedelta(hours=1), claimed_by="w",
                             claimed_until=utcnow() + timedelta(minutes=2))
    setattr(provider, field, value)
    db.session.commit()
    assert provider.check_generation == 2
    # Due at once and free: a check of the new settings need not wait for the old one.
    assert (provider.next_check_at, provider.claimed_by, provider.claimed_until) == (None, None, None)


@pytest.mark.parametrize("field, value", [
    ("access_url", "https://ws.example"), ("cordoned", True), ("e2e_encryption", True),
    ("pod_node_selector", {"disk": "ssd"}),
])
def test_other_settings_keep_the_generation(app, make_provider, field, value):
    provider = make_provider()
    setattr(provider, field, value)
    db.session.commit()
    assert provider.check_generation == 1


def test_a_pending_provider_is_not_backed_off(app, kube_api, kube_provider):
    provider = kube_provider(kube_api)  # reachable, not deployed
    waits = []
    for _ in range(5):
        scheduled(app, provider)
        waits.append(round((provider.next_check_at - provider.last_checked_at).total_seconds()))
    assert provider.status == "pending" and provider.consecutive_failures == 5
    assert waits == [30] * 5


def test_a_pending_provider_turns_ready_within_one_interval_of_kubectl_apply(app, kube_api,
                                                                            kube_provider):
    app.config["CHECK_INTERVAL"] = 1
    provider = kube_provider(kube_api)

    def status():
        db.session.expire_all()
        return db.session.get(Provider, provider.id).status

    sweeper = Sweeper(app, worker="a")
    try:
        wait_for(lambda: (sweeper.tick(), len(history("scheduled")) >= 4)[1])
        assert status() == "pending"
        kube_api.deploy_marker("east")  # kubectl apply
        applied = time.monotonic()
        wait_for(lambda: (sweeper.tick(), status() == "ready")[1])
        took = time.monotonic() - applied
    finally:
        sweeper.shutdown()
    assert took < 1 + 0.9, took  # one interval, and the check itself (backed off: 8 s)


def test_check_now_on_the_provider_page_stays_there(app, actions, client, kube_api, kube_provider):
    actions.login()
    provider = kube_provider(kube_api)
    url = f"/manage/providers/{provider.id}"
    page = client.get(url).text
    form = re.search(r'<form[^>]*hx-post="[^"]*/check".*?</form>', page, re.S).group(0)
    assert 'hx-target="#provider-detail"' in form and 'name="from" value="page"' in form
    kube_api.deploy_marker("east")
    detail = actions.post(f"{url}/check", {"from": "page"}, htmx=True)
    assert detail.status_code == 200 and "HX-Request" in detail.headers["Vary"]
    assert detail.text.startswith('<section id="provider-detail"')
    assert ">Ready<" in detail.text and "Check history" in detail.text
    assert "provider-row-" not in detail.text and "<html" not in detail.text
    plain = actions.post(f"{url}/check", {"from": "page"})
    assert plain.status_code == 303 and plain.headers["Location"].endswith(url)
    assert len(history("manual")) == 2


def test_check_now_in_the_list_updates_the_row(app, actions, kube_api, kube_provider):
    actions.login()
    kube_api.deploy_marker("east")
    provider = kube_provider(kube_api)
    row = actions.post(f"/manage/providers/{provider.id}/check", htmx=True)
    assert row.status_code == 200 and row.text.startswith(f'<tr id="provider-row-{provider.id}"')
    assert ">Ready<" in row.text
    plain = actions.post(f"/manage/providers/{provider.id}/check")
    assert plain.status_code == 303 and plain.headers["Location"].endswith("/manage/providers/")


NOW = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("expires, phrase", [
    (NOW + timedelta(hours=5), "expires in less than a day"),
    (NOW + timedelta(days=1, hours=1), "expires in 1 day"),
    (NOW + timedelta(days=3, hours=1), "expires in 3 days"),
    (NOW - timedelta(hours=5), "expired less than a day ago"),
    (NOW - timedelta(days=2, hours=1), "expired 2 days ago"),
])
def test_token_expiry_phrase(expires, phrase):
    assert token_expiry_phrase(expires, NOW) == phrase


@pytest.mark.parametrize("left, phrase", [
    (timedelta(hours=5), "expires in less than a day"),
    (timedelta(days=3, hours=1), "expires in 3 days"),
])
def test_the_token_expiry_is_said_once_in_the_row_and_alike_on_the_page(
        app, actions, client, kube_api, kube_provider, left, phrase):
    actions.login()
    kube_api.deploy_marker("east")
    provider = kube_provider(kube_api, token=jwt(exp=int((utcnow() + left).timestamp())))
    check_now(provider)
    listing = client.get("/manage/providers/").text
    row = re.search(rf'<tr id="provider-row-{provider.id}".*?</tr>', listing, re.S).group(0)
    assert row.count("The token ") == 1 and f"The token {phrase} (" in row
    page = client.get(f"/manage/providers/{provider.id}").text
    assert f"The token {phrase}. Replace it soon." in page
    assert "0 days" not in page + listing


def test_an_expired_token_says_how_long_ago(app, actions, client, kube_api, kube_provider):
    actions.login()
    provider = kube_provider(kube_api, token=jwt(
        exp=int((utcnow() - timedelta(days=2, hours=1)).timestamp())))
    check_now(provider)
    assert provider.status_category == "token_expired"
    assert "The token expired 2 days ago." in client.get(f"/manage/providers/{provider.id}").text


def test_a_save_between_reading_and_writing_a_result_still_wins(app, kube_api, kube_provider):
    # The writer reads the generation, then a save commits, then the writer's UPDATE runs: its
    # compare-and-set leaves the status alone, and the history says the result was superseded.
    from provider_admin.checks.jobs import job_for, run
    from provider_admin.checks.results import Outcome, save_results

    kube_api.deploy_marker("east")
    provider = kube_provider(kube_api)
    job = job_for(provider, full=True)
    result, _ = run(job, 5.0)
    assert result.ok
    other = sa.create_engine(db.engine.url)
    saved = []

    def save_first(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("UPDATE providers") and not saved:
            with other.begin() as save:
                save.execute(sa.update(Provider).where(Provider.id == provider.id).values(
                    namespace="elsewhere", check_generation=Provider.check_generation + 1))
            saved.append(True)

    sa.event.listen(db.engine, "before_cursor_execute", save_first)
    try:
        save_results([Outcome(provider.id, result, "scheduled", True, generation=job.generation)])
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", save_first)
        other.dispose()
    assert saved
    db.session.expire_all()
    provider = db.session.get(Provider, provider.id)
    assert (provider.status, provider.last_checked_at, provider.check_generation) == ("pending", None, 2)
    assert history("scheduled")[0].superseded
