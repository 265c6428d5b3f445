"""The Alembic migrations build exactly the schema the models describe, and can be undone."""
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from provider_admin import create_app, models  # noqa: F401  (models fill db.metadata)
from provider_admin.database import MIGRATIONS
from provider_admin.extensions import db

from provider_admin.models import utcnow

from .conftest import ENCRYPTION_KEY, TEST_DATABASE_URL, _driver

MODEL_TABLES = set(db.metadata.tables)


def schema_differences(engine) -> list:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True,
                                                               "compare_server_default": False})
        return compare_metadata(context, db.metadata)


def tables(engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


@pytest.fixture
def empty_sqlite_app(tmp_path):
    path = tmp_path / "empty.sqlite"
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}", "AUTO_MIGRATE": False, "TESTING": True,
                      "SECRET_KEY": "x", "ENCRYPTION_KEY": ENCRYPTION_KEY})
    with app.app_context():
        yield app
        db.engine.dispose()


def flask_db(app, *args):
    result = app.test_cli_runner().invoke(args=["db", *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def test_the_models_are_loaded():
    assert {"users", "organizations", "organization_members", "providers", "provider_organizations",
            "provider_checks", "workspaces", "audit_events"} <= MODEL_TABLES


def test_the_comparison_sees_differences(empty_sqlite_app):
    # Guards the tests below: an empty database differs from the models by every table.
    added = {diff[1].name for diff in schema_differences(db.engine) if diff[0] == "add_table"}
    assert added == MODEL_TABLES


def test_upgrade_on_an_empty_sqlite_file_matches_the_models(empty_sqlite_app):
    assert tables(db.engine) == set()
    flask_db(empty_sqlite_app, "upgrade")
    assert tables(db.engine) == MODEL_TABLES | {"alembic_version"}
    assert schema_differences(db.engine) == []


def test_downgrade_to_base_and_upgrade_again(empty_sqlite_app):
    flask_db(empty_sqlite_app, "upgrade")
    flask_db(empty_sqlite_app, "downgrade", "base")
    assert tables(db.engine) == {"alembic_version"}
    with db.engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() is None
    flask_db(empty_sqlite_app, "upgrade")
    assert tables(db.engine) == MODEL_TABLES | {"alembic_version"}
    assert schema_differences(db.engine) == []


def test_upgrade_records_the_single_head(empty_sqlite_app):
    flask_db(empty_sqlite_app, "upgrade")
    heads = ScriptDirectory.from_config(empty_sqlite_app.extensions["migrate"].migrate.get_config(str(MIGRATIONS))
                                        ).get_heads()
    assert len(heads) == 1, f"more than one migration head: {heads}"
    with db.engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == heads[0]
    flask_db(empty_sqlite_app, "upgrade")  # a second upgrade is a no-op


def test_the_test_database_matches_the_models(app):
    # The session's database was built by the real migrations: SQLite, or PostgreSQL when configured.
    assert MODEL_TABLES <= tables(db.engine)
    assert schema_differences(db.engine) == []


def test_first_start_creates_and_migrates_the_embedded_database(tmp_path, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("PROVIDER_ADMIN_SQLALCHEMY_DATABASE_URI", raising=False)
    monkeypatch.setenv("PROVIDER_ADMIN_INSTANCE_PATH", str(tmp_path / "instance"))
    app = create_app({"SECRET_KEY": "x", "ENCRYPTION_KEY": ENCRYPTION_KEY})
    assert (tmp_path / "instance" / "provider_admin.sqlite").exists()
    with app.app_context():
        assert tables(db.engine) == MODEL_TABLES | {"alembic_version"}
        db.engine.dispose()
    create_app({"SECRET_KEY": "x", "ENCRYPTION_KEY": ENCRYPTION_KEY})  # the next start finds it up to date


def _upgrade_with_providers_from_0003(app):
    """Two providers written at revision 0003, then the upgrade to the head."""
    flask_db(app, "upgrade", "0003")
    with db.engine.begin() as connection:
        for name in ("east", "west"):
            connection.execute(sa.text(
                "INSERT INTO providers (name, namespace, is_builtin, e2e_encryption, external_ssh, "
                "cordoned, status, consecutive_failures, display_version, created_at, updated_at, "
                "version) VALUES (:name, 'ws', false, false, false, false, 'ready', 0, 1, :now, :now, 1)"
            ), {"name": name, "now": utcnow()})
    flask_db(app, "upgrade")
    with db.engine.connect() as connection:
        uids = dict(connection.execute(sa.text("SELECT name, uid FROM providers")).all())
    assert set(uids) == {"east", "west"}
    assert all(len(uid) == 36 for uid in uids.values()) and uids["east"] != uids["west"]
    assert schema_differences(db.engine) == []


def test_upgrade_gives_existing_providers_a_uid_on_sqlite(empty_sqlite_app):
    _upgrade_with_providers_from_0003(empty_sqlite_app)


@pytest.mark.skipif(not TEST_DATABASE_URL, reason="PostgreSQL not configured")
def test_upgrade_gives_existing_providers_a_uid_on_postgresql():
    # A schema of its own in the test database, so the session's tables stay as they are.
    schema = "migration_0005"
    engine = sa.create_engine(_driver(TEST_DATABASE_URL))
    with engine.begin() as connection:
        connection.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"))
    separator = "&" if "?" in TEST_DATABASE_URL else "?"
    url = f"{TEST_DATABASE_URL}{separator}options=-csearch_path%3D{schema}"
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "AUTO_MIGRATE": False, "TESTING": True,
                      "SECRET_KEY": "x", "ENCRYPTION_KEY": ENCRYPTION_KEY})
    try:
        with app.app_context():
            _upgrade_with_providers_from_0003(app)
            db.engine.dispose()
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()
