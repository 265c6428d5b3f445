"""Shared fixtures: an app on a fresh database (SQLite, or PostgreSQL when
PROVIDER_ADMIN_TEST_DATABASE_URL says so), a client with CSRF on, and sign-in helpers."""
import html
import json
import os
import re
import shutil
import tempfile

import pytest
import sqlalchemy as sa
from flask import g, request_started

from provider_admin import create_app
from provider_admin.extensions import db
from provider_admin.models import Organization, Provider, Role, User

os.environ.setdefault("PROVIDER_ADMIN_INSTANCE_PATH", tempfile.mkdtemp(prefix="provider-admin-test-"))
TEST_DATABASE_URL = os.environ.get("PROVIDER_ADMIN_TEST_DATABASE_URL")
PASSWORD = "correct horse battery"
ENCRYPTION_KEY = "kR3l0Fb2Vr7o8C1G4u6bq2mVn9xw1G3Hk0pQ5yT8sZU="


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory):
    """Run the real migrations once; each test then starts from a copy or a truncation."""
    if TEST_DATABASE_URL:
        engine = sa.create_engine(_driver(TEST_DATABASE_URL))
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        engine.dispose()
        url = TEST_DATABASE_URL
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('template') / 'template.sqlite'}"
    create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True, "AUTO_MIGRATE": True,
                "SECRET_KEY": "x", "ENCRYPTION_KEY": ENCRYPTION_KEY})
    return url


def _driver(url: str) -> str:
    from provider_admin.config import normalize_database_url

    return normalize_database_url(url)


@pytest.fixture
def database_url(migrated_database, tmp_path):
    if TEST_DATABASE_URL:
        engine = sa.create_engine(_driver(TEST_DATABASE_URL))
        with engine.begin() as conn:
            names = ", ".join(t.name for t in db.metadata.sorted_tables)
            conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        engine.dispose()
        return TEST_DATABASE_URL
    path = tmp_path / "test.sqlite"
    shutil.copy(migrated_database.removeprefix("sqlite:///"), path)
    return f"sqlite:///{path}"


@pytest.fixture
def app_config(database_url, tmp_path):
    """Override in a test module to change configuration."""
    return {}


@pytest.fixture
def app(database_url, app_config, tmp_path):
    config = {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "AUTO_MIGRATE": False,
        "SECRET_KEY": "test-secret",
        "ENCRYPTION_KEY": ENCRYPTION_KEY,
        "SERVER_NAME": "localhost",
        "RUN_SCHEDULER": False,
    }
    config.update(app_config)
    app = create_app(config)
    request_started.connect(_fresh_globals, app)
    yield app
    builds = app.extensions.get("workspace_builds")
    if builds is not None:  # a build thread must not outlive its test (and its tables)
        builds.shutdown(wait=True)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def app_context(app):
    """The app's context around a test, for tests and fixtures that use the database (or
    anything else of the app) directly rather than through requests."""
    with app.app_context():
        yield


def _fresh_globals(sender, **extra) -> None:
    """A request made while a test holds the app's context runs inside that context, so `g`
    would carry the previous request's user and CSRF token over; in production each request
    starts with a new `g`."""
    g.__dict__.clear()


@pytest.fixture
def client(app):
    return app.test_client()


class Actions:
    """Sign-in and CSRF helpers for a test client."""

    def __init__(self, client, app):
        self.client, self.app = client, app

    def user(self, role=Role.ADMIN.value, email=None, username=None, organizations=()):
        username = username or f"{role}{db.session.query(User).count() + 1}"
        user = User(email=email or f"{username}@example.com", username=username, role=role,
                    organizations=list(organizations))
        user.set_password(PASSWORD)
        db.session.add(user)
        db.session.commit()
        return user

    def login(self, role=Role.ADMIN.value, **kwargs):
        user = self.user(role, **kwargs)
        token = self.form_token("/login")
        response = self.client.post("/login", data={"email": user.email, "password": PASSWORD,
                                                    "csrf_token": token})
        assert response.status_code == 303, response.data
        return user

    def form_token(self, url: str) -> str:
        html = self.client.get(url).get_data(as_text=True)
        match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
            r'name="csrf_token" value="([^"]+)"', html) or re.search(r'"X-CSRFToken": "([^"]+)"', html)
        assert match, f"no CSRF token on {url}"
        return match.group(1)

    def token(self) -> str:
        return self.form_token("/workspaces/")

    def post(self, url, data=None, htmx=False, **kwargs):
        """POST with a valid CSRF token, as a form field or, for HTMX, as the header."""
        data = dict(data or {})
        headers = kwargs.pop("headers", {})
        if htmx:
            headers.update({"HX-Request": "true", "X-CSRFToken": self.token()})
        else:
            data.setdefault("csrf_token", self.token())
        return self.client.post(url, data=data, headers=headers, **kwargs)

    def htmx_get(self, url, **kwargs):
        return self.client.get(url, headers={"HX-Request": "true"}, **kwargs)


@pytest.fixture
def actions(client, app, app_context):
    return Actions(client, app)


def statements_of(request):
    """The SQL statements `request()` sends, and its response."""
    statements = []

    def count_statement(conn, cursor, statement, *args):
        statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", count_statement)
    try:
        response = request()
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count_statement)
    return statements, response


def field_error(page: str, field: str) -> str:
    """The error text shown under a form field (empty when there is none)."""
    match = re.search(rf'<div class="error" id="{field}-error">(.*?)</div>', page, re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", match.group(1))).strip() if match else ""


@pytest.fixture
def make_org(app_context):
    def make(name="Acme", members=()):
        org = Organization(name=name, members=list(members))
        db.session.add(org)
        db.session.commit()
        return org

    return make


@pytest.fixture
def make_provider(app_context):
    def make(name="east", organizations=(), **fields):
        fields.setdefault("cluster_address", "https://k8s.invalid:6443")
        fields.setdefault("namespace", "workspaces")
        fields.setdefault("uid", provider_uid(name))
        provider = Provider(name=name, organizations=list(organizations), **fields)
        db.session.add(provider)
        db.session.commit()
        return provider

    return make


from tests.kube import kube_api, kube_api_tls, kube_target, provider_uid  # noqa: E402,F401  (fixtures)


@pytest.fixture
def kube_provider(make_provider):
    """A provider whose connection points at a test Kubernetes API."""
    from provider_admin import crypto

    def make(api, name="east", namespace="ws", token="test-token", **fields):
        conn = api.connection(namespace=namespace)
        return make_provider(
            name, cluster_address=conn.server, namespace=namespace, ca_cert=conn.ca_cert,
            credentials_encrypted=crypto.encrypt(json.dumps({"token": token})),
            credentials_kind="token", **fields)

    return make
