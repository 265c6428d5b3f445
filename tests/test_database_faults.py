"""SPEC §11: the database going away. The app reaches the test's PostgreSQL through a TCP
proxy that the test cuts and restores (tests/tcp_proxy.py), and its backends are ended with
pg_terminate_backend (only those of this test's application_name): pages answer a clear 503,
HTMX requests the message in the flash area, the API a problem document, /readyz false; and
the same app answers again once the database is back."""
import json
import logging
import threading
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from provider_admin import create_app
from provider_admin.checks.sweeper import Sweeper
from provider_admin.extensions import db
from provider_admin.models import (NotificationDelivery, NotificationEvent, Provider, ProviderCheck, Role,
                                   User, utcnow)
from provider_admin.notifications import events
from provider_admin.notifications.outbox import Courier
from tests.conftest import ENCRYPTION_KEY, PASSWORD, TEST_DATABASE_URL, _driver
from tests.tcp_proxy import TCPProxy
from tests.test_builtin_provider import pod  # noqa: F401  (fixture: what Kubernetes gives a pod)

pytestmark = pytest.mark.skipif(not TEST_DATABASE_URL, reason="needs PROVIDER_ADMIN_TEST_DATABASE_URL "
                                "(the faults are PostgreSQL's: a lost connection, a terminated backend)")
MESSAGE = "The database is not reachable at the moment. Try again in a moment."


@pytest.fixture
def proxy():
    target = urlsplit(TEST_DATABASE_URL)
    with TCPProxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        yield proxy


@pytest.fixture
def application_name():
    return f"pa-faults-{uuid.uuid4().hex[:12]}"


def through(proxy, application_name, url=None) -> str:
    """The test database's URL through the proxy, its sessions named `application_name`."""
    url = proxy.url_for(_driver(url or TEST_DATABASE_URL))
    return f"{url}{'&' if '?' in url else '?'}application_name={application_name}"


@pytest.fixture
def app_config(proxy, application_name, database_url):
    return {"SQLALCHEMY_DATABASE_URI": through(proxy, application_name), "READY_TIMEOUT": 1.0,
            "CHECK_INTERVAL": 2, "CHECK_LEASE": 30, "CHECK_POOL_SIZE": 4, "CHECK_TIMEOUT": 5.0,
            "CHECK_PERMISSIONS_EVERY": 3600, "NOTIFY_LEASE": 6, "NOTIFY_TIMEOUT": 10.0}


def terminate(application_name: str) -> int:
    """End every backend of this application name (no one else's), over a direct connection."""
    engine = sa.create_engine(_driver(TEST_DATABASE_URL))
    try:
        with engine.begin() as connection:
            return len(connection.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :name"),
                {"name": application_name}).all())
    finally:
        engine.dispose()


def assert_unreachable_page(response):
    assert response.status_code == 503, response.text
    assert MESSAGE in response.text and "Traceback" not in response.text
    assert response.headers["Retry-After"] == "5"


def test_pages_htmx_and_the_api_answer_503_while_the_database_is_away(app, client, actions, proxy):
    from provider_admin.tokens import service

    admin = actions.login(Role.ADMIN.value)
    _, secret = service.create(admin, "script", 30, True)
    bearer = {"Authorization": f"Bearer {secret}"}
    assert client.get("/manage/providers/").status_code == 200
    proxy.cut()
    try:
        assert_unreachable_page(client.get("/manage/providers/"))  # the user loader's query fails first
        page = client.get("/manage/providers/", headers={"HX-Request": "true"})
        assert page.status_code == 503 and MESSAGE in page.text and "<html" not in page.text
        assert page.headers["HX-Retarget"] == "#flashes" and page.headers["HX-Reswap"] == "innerHTML"
        problem = client.get("/api/v1/providers", headers=bearer)
        assert problem.status_code == 503 and problem.mimetype == "application/problem+json"
        assert problem.json["detail"] == MESSAGE and problem.headers["Retry-After"] == "5"
        assert client.get("/readyz").status_code == 503
        assert client.get("/readyz").json["checks"]["database"] == "unreachable"
        assert client.get("/healthz").status_code == 200
    finally:
        proxy.restore()
    assert client.get("/manage/providers/").status_code == 200
    assert client.get("/api/v1/providers", headers=bearer).status_code == 200
    assert client.get("/readyz").status_code == 200


def test_sign_in_and_a_change_answer_503_not_500(app, client, actions, proxy):
    user = actions.user(Role.ADMIN.value, username="ada")
    email = user.email
    token = actions.form_token("/login")
    proxy.cut(blackhole=True)  # a host that went silent: the connect timeout answers
    try:
        started = time.monotonic()
        response = client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
        assert_unreachable_page(response)
        assert time.monotonic() - started < 30  # DATABASE_CONNECT_TIMEOUT (5 s) per connection tried
    finally:
        proxy.restore()
    assert client.post("/login", data={"email": email, "password": PASSWORD,
                                       "csrf_token": token}).status_code == 303
    csrf = actions.token()
    proxy.cut()
    try:
        response = client.post("/manage/organizations/", data={"name": "Acme", "csrf_token": csrf})
        assert_unreachable_page(response)
    finally:
        proxy.restore()
    assert client.post("/manage/organizations/", data={"name": "Acme", "csrf_token": csrf}).status_code == 303


def test_backends_ended_by_the_server_cost_one_503_at_most_and_do_not_poison_the_pool(
        app, client, actions, application_name):
    actions.login(Role.ADMIN.value)
    for _ in range(3):
        assert client.get("/manage/providers/").status_code == 200
    # Idle pooled connections ended: pool_pre_ping replaces them unseen.
    db.session.remove()  # the test's own session gives its connection back too
    assert terminate(application_name) >= 1
    assert client.get("/manage/providers/").status_code == 200
    # A session in the middle of its transaction when its backend is ended (the test shares
    # the requests' session, so it opens one): that request alone answers 503.
    db.session.execute(sa.select(User.id)).all()
    assert terminate(application_name) >= 1
    assert_unreachable_page(client.get("/manage/providers/"))
    for _ in range(3):
        assert client.get("/manage/providers/").status_code == 200


def test_the_web_starts_while_the_database_is_away_and_migrates_when_it_is_back(
        proxy, application_name, tmp_path, database_url):
    proxy.cut()
    app = create_app({"SQLALCHEMY_DATABASE_URI": through(proxy, application_name), "AUTO_MIGRATE": True,
                      "SECRET_KEY": "x", "ENCRYPTION_KEY": ENCRYPTION_KEY, "RUN_SCHEDULER": False,
                      "READY_TIMEOUT": 1.0})
    client = app.test_client()
    try:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").json["checks"]["database"] == "unreachable"
        assert_unreachable_page(client.get("/login"))
        proxy.restore()
        # The first try again comes after 1 s, the next ones twice as late each time.
        deadline = time.monotonic() + 30
        while client.get("/login").status_code == 503:
            assert time.monotonic() < deadline, "the web did not come back with the database"
            time.sleep(0.5)
        assert client.get("/login").location == "/setup"  # an empty database: the first account
        assert client.get("/readyz").status_code == 200
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_the_builtin_provider_is_registered_once_the_database_is_back(
        proxy, application_name, tmp_path, database_url, pod):
    proxy.cut()
    app = create_app({"SQLALCHEMY_DATABASE_URI": through(proxy, application_name), "AUTO_MIGRATE": True,
                      "SECRET_KEY": "x", "ENCRYPTION_KEY": ENCRYPTION_KEY, "RUN_SCHEDULER": False,
                      "BUILTIN_PROVIDER": "in-cluster"})
    engine = sa.create_engine(_driver(TEST_DATABASE_URL))
    try:
        proxy.restore()
        with engine.connect() as connection:
            wait_until(lambda: connection.execute(sa.select(Provider.name, Provider.namespace).where(
                Provider.is_builtin.is_(True))).all() == [("in-cluster", "ws")], seconds=30)
    finally:
        engine.dispose()
        with app.app_context():
            db.engine.dispose()


# Check results ---------------------------------------------------------------------------------

MARKER = "GET /api/v1/namespaces/{}/configmaps/provider-admin-marker"  # read once by every check


@pytest.fixture
def six(kube_api, kube_provider):
    """Six deployed providers in Error (their first check turns them Ready: a change that is
    told); a check takes a second, so some are under way when the database goes."""
    kube_api.slow("get /version", 1.0)
    kube_api.slow("get /version/", 1.0)
    providers = []
    for i in range(6):
        kube_api.deploy_marker(f"p{i}", namespace=f"ns{i}")
        provider = kube_provider(kube_api, name=f"p{i}", namespace=f"ns{i}", status="error",
                                 last_permissions_check_at=utcnow())
        providers.append(Registered(provider.id, provider.name, provider.namespace))
    return providers


class Registered(NamedTuple):
    """A provider as registered (the test's session is renewed after each cut)."""

    id: int
    name: str
    namespace: str


@contextmanager
def ticking(app):
    """A sweeper ticked every 0.2 s, as the scheduler does; shut down (results written) after."""
    sweeper, stop = Sweeper(app, worker="faults"), threading.Event()

    def run():
        while not stop.is_set():
            sweeper.tick()
            time.sleep(0.2)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield sweeper
    finally:
        stop.set()
        thread.join()
        sweeper.shutdown()


def fresh_session() -> None:
    """The test's own session starts again (its connection may have died with a cut)."""
    try:
        db.session.rollback()
    except sa.exc.OperationalError:
        pass
    db.session.remove()


def history() -> Counter:
    """Provider id -> scheduled checks in the history."""
    fresh_session()
    return Counter(db.session.scalars(sa.select(ProviderCheck.provider_id)
                                      .where(ProviderCheck.trigger == "scheduled")))


def wait_until(condition, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def assert_each_check_written_once(kube_api, providers, dropped: bool = False) -> None:
    """The history holds exactly the checks the clusters saw (`dropped`: at most those, some
    results having outlived their lease), and each change was told once."""
    requests = Counter(kube_api.requests)
    written = history()
    seen = {p.name: requests[MARKER.format(p.namespace)] for p in providers}
    if dropped:
        assert all(written[p.id] <= seen[p.name] for p in providers) and written != seen, (written, seen)
    else:
        assert {p.name: written[p.id] for p in providers} == seen
    told = Counter(db.session.scalars(sa.select(NotificationEvent.provider_id)))
    assert {p.name: told[p.id] for p in providers} == {p.name: 1 for p in providers}  # Error -> Ready


def test_check_results_made_while_the_database_is_away_are_written_once_when_it_is_back(
        app, kube_api, six, proxy, caplog):
    caplog.set_level(logging.WARNING, "provider_admin.checks.sweeper")
    with ticking(app):
        wait_until(lambda: sum(MARKER.format(p.namespace) in kube_api.requests for p in six) == 0
                   and "GET /version" in kube_api.requests)  # the first checks are under way
        proxy.cut()
        time.sleep(3)  # they end meanwhile: their results wait
        proxy.restore()
        wait_until(lambda: min(history()[p.id] for p in six) >= 3)
    assert any("trying again" in r.getMessage() for r in caplog.records), "no result waited for the database"
    assert_each_check_written_once(kube_api, six)


def test_a_batch_whose_commit_answer_was_lost_is_not_written_twice(app, kube_api, six, proxy, caplog):
    caplog.set_level(logging.INFO, "provider_admin.checks")
    proxy.lose_answer(after=b"INSERT INTO provider_checks", to=b"COMMIT")
    with ticking(app):
        wait_until(lambda: min(history()[p.id] for p in six) >= 2)
    assert proxy.lost_answers == 1
    # Sent again, the batch found its results written: skipped, not refused by the unique key.
    assert any("were written before the database went away" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert_each_check_written_once(kube_api, six)


def test_a_result_kept_past_its_lease_is_dropped_and_the_provider_checked_again(
        app, kube_api, six, proxy, caplog):
    """A lease shorter than the outage: the results under way are not written late (another
    scheduler may have checked meanwhile), and the next sweep checks those providers."""
    caplog.set_level(logging.WARNING, "provider_admin.checks.sweeper")
    app.config["CHECK_LEASE"] = 3
    with ticking(app):
        wait_until(lambda: "GET /version" in kube_api.requests)
        proxy.cut()
        time.sleep(5)
        proxy.restore()
        wait_until(lambda: min(history()[p.id] for p in six) >= 1)
    assert any("their leases end" in r.getMessage() for r in caplog.records)
    assert_each_check_written_once(kube_api, six, dropped=True)


def test_a_result_comes_too_late_when_another_scheduler_holds_the_provider(app, kube_api, six):
    from datetime import timedelta

    from provider_admin import kube
    from provider_admin.checks.results import Outcome, new_key, save_results

    first = six[0]
    db.session.execute(sa.update(Provider).where(Provider.id == first.id).values(
        claimed_by="other", claimed_until=utcnow() + timedelta(seconds=30)))
    db.session.commit()
    late = Outcome(first.id, kube.CheckResult(ok=True, category="ok", message=""), "scheduled", False,
                   worker="faults", generation=db.session.get(Provider, first.id).check_generation, key=new_key())
    assert save_results([late]) == []
    assert history()[first.id] == 0
    assert db.session.get(Provider, first.id).claimed_by == "other"


# Notifications -------------------------------------------------------------------------------

class HeldReceiver:
    """A webhook receiver that holds its answer until `release` is set: the message has
    arrived, and its sender waits for the answer."""

    def __init__(self):
        self.bodies: list[dict] = []
        self.arrived, self.release = threading.Event(), threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                receiver.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                receiver.arrived.set()
                receiver.release.wait(8)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"


@pytest.fixture
def held_receiver():
    receiver = HeldReceiver()
    yield receiver
    receiver.release.set()
    receiver.server.shutdown()
    receiver.server.server_close()


def one_delivery(actions, url):
    from .notify import add_target

    actions.login()
    add_target(actions, "Ops hook", "webhook", url)
    events.enqueue(events.STATUS, "east is down (Error)", "east is now Error", {"provider": {"name": "east"}})
    db.session.commit()


def delivery_log():
    fresh_session()
    return [(d.status, d.attempts, d.claimed_by) for d in db.session.scalars(sa.select(NotificationDelivery))]


def tick_after_the_lease(app) -> None:
    """A courier ticks once the lease (NOTIFY_LEASE, 6 s) of a delivery left unwritten has
    ended: such a delivery would be sent again now."""
    time.sleep(app.config["NOTIFY_LEASE"] + 1)
    Courier(app).tick()


def test_a_message_sent_while_the_database_went_away_is_marked_delivered_not_sent_again(
        app, actions, proxy, held_receiver, caplog):
    caplog.set_level(logging.WARNING, "provider_admin.notifications.outbox")
    one_delivery(actions, held_receiver.url)
    courier = threading.Thread(target=Courier(app).tick)
    courier.start()
    assert held_receiver.arrived.wait(30)
    proxy.cut()  # the message is on its way
    held_receiver.release.set()
    time.sleep(2)
    proxy.restore()
    courier.join(30)
    assert any("trying again" in r.getMessage() for r in caplog.records)
    assert delivery_log() == [("delivered", 1, None)]
    tick_after_the_lease(app)
    assert len(held_receiver.bodies) == 1
    assert delivery_log() == [("delivered", 1, None)]


def test_a_delivered_mark_whose_commit_answer_was_lost_is_not_counted_twice(app, actions, proxy, held_receiver):
    held_receiver.release.set()
    one_delivery(actions, held_receiver.url)
    proxy.lose_answer(after=b"delivered_at=$", to=b"COMMIT")  # the outcome's UPDATE
    Courier(app).tick()
    assert proxy.lost_answers == 1
    assert delivery_log() == [("delivered", 1, None)]
    tick_after_the_lease(app)
    assert len(held_receiver.bodies) == 1
