"""SPEC §11: the database going away. The app reaches the test's PostgreSQL through a TCP
proxy that the test cuts and restores (tests/tcp_proxy.py), and its backends are ended with
pg_terminate_backend (only those of this test's application_name): pages answer a clear 503,
HTMX requests the message in the flash area, the API a problem document, /readyz false; and
the same app answers again once the database is back."""
import time
import uuid
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from provider_admin import create_app
from provider_admin.extensions import db
from provider_admin.models import Role, User
from tests.conftest import ENCRYPTION_KEY, PASSWORD, TEST_DATABASE_URL, _driver
from tests.tcp_proxy import TCPProxy

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
    return {"SQLALCHEMY_DATABASE_URI": through(proxy, application_name), "READY_TIMEOUT": 1.0}


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
