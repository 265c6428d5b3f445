"""/healthz and /readyz: open to anyone, cheap, and saying which check failed but nothing
about the database's address, user or driver."""
import json
import shutil

import pytest
import sqlalchemy as sa

from provider_admin import create_app
from provider_admin.database import script_head
from provider_admin.extensions import db
from provider_admin.models import AuditEvent, User

from .conftest import ENCRYPTION_KEY, TEST_DATABASE_URL, statements_of
from .test_migrations import flask_db

# A database nobody listens for: port 1 refuses at once. The name, user and password must
# not come back in any answer.
CLOSED = "postgresql://probe-user:probe-secret@127.0.0.1:1/probe-db"
SECRETS = ("probe-user", "probe-secret", "probe-db", "127.0.0.1:1", "refused", "psycopg", "OperationalError")


def app_on(url, **config):
    return create_app({"SQLALCHEMY_DATABASE_URI": url, "AUTO_MIGRATE": False, "TESTING": True,
                       "SECRET_KEY": "x", "ENCRYPTION_KEY": ENCRYPTION_KEY, "RUN_SCHEDULER": False,
                       "READY_TIMEOUT": 1.0, **config})


def readyz(client):
    response = client.get("/readyz")
    assert response.mimetype == "application/json"
    return response.status_code, response.get_json()


def test_healthz_answers_ok_without_the_database(app, client, app_context):
    statements, response = statements_of(lambda: client.get("/healthz"))
    assert (response.status_code, response.text, response.mimetype) == (200, "ok\n", "text/plain")
    assert statements == []
    assert "Set-Cookie" not in response.headers and response.headers["Cache-Control"] == "no-store"


def test_readyz_answers_ready_on_a_migrated_database(app, client, app_context):
    # The app's own engine is left alone: the probe has an engine (and pool) of its own.
    statements, response = statements_of(lambda: client.get("/readyz"))
    assert response.status_code == 200 and statements == []
    assert response.get_json() == {"status": "ready", "checks": {"database": "ok", "migrations": "ok"}}
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_answer_before_the_first_account_instead_of_leading_to_setup(app, client, app_context, path):
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0
    assert client.get("/manage/providers/").headers["Location"].endswith("/setup")  # every page does
    response = client.get(path)
    assert response.status_code == 200 and "Location" not in response.headers


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_need_no_sign_in_no_csrf_and_are_neither_audited_nor_rate_limited(actions, client, path):
    actions.user()  # past setup
    for _ in range(120):
        assert client.get(path).status_code == 200
    assert client.head(path).status_code == 200
    assert client.post(path).status_code == 405  # no CSRF error: there is nothing to post
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == 0


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_a_signed_in_browser_probing_is_not_user_activity(actions, client, path):
    actions.login()
    statements, response = statements_of(lambda: client.get(path))
    assert response.status_code == 200
    assert not any("FROM users" in statement for statement in statements)  # the user is not loaded
    assert "Set-Cookie" not in response.headers  # nor the session marked as used


def test_readyz_says_the_database_is_unreachable_and_nothing_else():
    app = app_on(CLOSED)
    client = app.test_client()
    status, body = readyz(client)
    assert status == 503
    assert body == {"status": "not ready", "checks": {"database": "unreachable", "migrations": "unknown"}}
    text = client.get("/readyz").text
    assert not [secret for secret in SECRETS if secret in text]
    # The process itself still answers: liveness does not depend on the database.
    assert client.get("/healthz").status_code == 200


def test_readyz_on_a_sqlite_file_whose_folder_went_away_is_unreachable(tmp_path):
    app = app_on(f"sqlite:///{tmp_path}/gone/provider_admin.sqlite")  # the app makes the file
    shutil.rmtree(tmp_path / "gone")  # a volume unmounted under the running app
    status, body = readyz(app.test_client())
    assert (status, body["checks"]["database"]) == (503, "unreachable")


def test_readyz_follows_the_schema_revision(tmp_path):
    app = app_on(f"sqlite:///{tmp_path / 'db.sqlite'}")
    client = app.test_client()
    with app.app_context():
        assert readyz(client) == (503, {"status": "not ready",
                                        "checks": {"database": "ok", "migrations": "not applied"}})
        flask_db(app, "upgrade", "0011")
        assert script_head() != "0011"  # guards the next line: the code is ahead of the database
        assert readyz(client) == (503, {"status": "not ready", "checks": {"database": "ok", "migrations": "behind"}})
        flask_db(app, "upgrade")
        assert readyz(client) == (200, {"status": "ready", "checks": {"database": "ok", "migrations": "ok"}})
        # A newer release migrated the database: this code does not know its revision.
        with db.engine.begin() as connection:
            connection.execute(sa.text("UPDATE alembic_version SET version_num = '0099'"))
        assert readyz(client) == (503, {"status": "not ready", "checks": {"database": "ok", "migrations": "ahead"}})
        flask_db(app, "stamp", "--purge", "0011")  # an older revision stamped: behind again
        assert readyz(client)[1]["checks"]["migrations"] == "behind"
        db.engine.dispose()


@pytest.mark.skipif(not TEST_DATABASE_URL, reason="PostgreSQL not configured")
def test_readyz_statements_have_a_short_timeout_on_postgresql(app, client, app_context):
    assert client.get("/readyz").status_code == 200
    engine = app.extensions["readiness_engine"]
    with engine.connect() as connection:
        assert connection.execute(sa.text("SHOW statement_timeout")).scalar() == "2s"


def test_readyz_answer_is_small_json(app, client, app_context):
    response = client.get("/readyz")
    assert len(response.data) < 200 and json.loads(response.data)["status"] == "ready"
