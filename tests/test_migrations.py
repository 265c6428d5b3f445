"""The Alembic migrations build exactly the schema the models describe, and can be undone."""
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from provider_admin import create_app, models  # noqa: F401  (models fill db.metadata)
from provider_admin.database import MIGRATIONS
from provider_admin.extensions import db

from .conftest import ENCRYPTION_KEY

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


def test_check_generation_upgrades_a_database_with_providers_and_checks(empty_sqlite_app):
    flask_db(empty_sqlite_app, "upgrade", "0003")
    with db.engine.begin() as connection:
        connection.execute(sa.text(
            "INSERT INTO providers (id, name, namespace, is_builtin, e2e_encryption, external_ssh, "
            "cordoned, status, consecutive_failures, display_version, created_at, updated_at, version) "
            "VALUES (1, 'east', 'ws', 0, 0, 0, 0, 'ready', 0, 3, '2026-11-01', '2026-11-01', 4)"))
        connection.execute(sa.text(
            "INSERT INTO provider_checks (provider_id, checked_at, ok, category, message, trigger) "
            "VALUES (1, '2026-11-01', 1, 'ready', 'Ready', 'scheduled')"))
    flask_db(empty_sqlite_app, "upgrade")
    with db.engine.connect() as connection:
        assert connection.execute(sa.text(
            "SELECT name, version, check_generation FROM providers")).one() == ("east", 4, 1)
        assert connection.execute(sa.text("SELECT superseded FROM provider_checks")).scalar() == 0
    assert schema_differences(db.engine) == []
    from provider_admin.models import Provider

    provider = db.session.get(Provider, 1)
    provider.namespace = "elsewhere"  # the upgraded row takes part in the generations
    db.session.commit()
    assert provider.check_generation == 2
