"""The Alembic migrations build exactly the schema the models describe, and can be undone."""
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from provider_admin import create_app, models  # noqa: F401  (models fill db.metadata)
from provider_admin.tokens import models as token_models  # noqa: F401
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
            "provider_checks", "workspaces", "audit_events", "api_tokens"} <= MODEL_TABLES


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


def test_the_test_database_matches_the_models(app, app_context):
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


@pytest.fixture
def database_before_0006(tmp_path):
    """An empty database of its own: a SQLite file, or a fresh schema in the PostgreSQL one."""
    from .conftest import TEST_DATABASE_URL, _driver

    if not TEST_DATABASE_URL:
        yield f"sqlite:///{tmp_path / 'old.sqlite'}"
        return
    engine = sa.create_engine(_driver(TEST_DATABASE_URL))
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS upgrade_test CASCADE; CREATE SCHEMA upgrade_test"))
    yield _driver(TEST_DATABASE_URL) + "?options=-csearch_path%3Dupgrade_test"
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA upgrade_test CASCADE"))
    engine.dispose()


def test_upgrade_keeps_the_names_and_place_of_existing_workspaces(database_before_0006):
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_before_0006, "AUTO_MIGRATE": False,
                      "TESTING": True, "SECRET_KEY": "x", "ENCRYPTION_KEY": ENCRYPTION_KEY})
    with app.app_context():
        flask_db(app, "upgrade", "0003")
        with db.engine.begin() as conn:
            now = "2026-01-01 00:00:00+00:00"
            conn.execute(sa.text(
                "INSERT INTO users (id, email, username, role, active, created_at) "
                "VALUES (1, 'ada@example.com', 'ada', 'member', true, :now)"), {"now": now})
            conn.execute(sa.text("INSERT INTO organizations (id, name, created_at) VALUES (1, 'Acme', :now)"),
                         {"now": now})
            conn.execute(sa.text(
                "INSERT INTO providers (id, name, cluster_address, namespace, is_builtin, e2e_encryption, "
                "external_ssh, cordoned, status, consecutive_failures, display_version, created_at, "
                "updated_at, version) VALUES (1, 'east', 'https://k8s.example.com', 'ws', false, false, "
                "false, false, 'ready', 0, 1, :now, :now, 1)"), {"now": now})
            for workspace_id, name in ((1, "dev"), (7, "a" * 63)):
                conn.execute(sa.text(
                    "INSERT INTO workspaces (id, name, owner_id, organization_id, provider_id, image, cpu, "
                    "memory, disk, status, created_at, updated_at) VALUES (:id, :name, 1, 1, 1, 'img', '1', "
                    "'1Gi', '1Gi', 'running', :now, :now)"), {"id": workspace_id, "name": name, "now": now})

        flask_db(app, "upgrade")

        rows = db.session.execute(sa.text(
            "SELECT id, uid, object_base, legacy_labels, namespace, cluster_address, delete_requested "
            "FROM workspaces ORDER BY id")).mappings().all()
        assert [(r["object_base"], bool(r["legacy_labels"]), r["namespace"], r["cluster_address"],
                 bool(r["delete_requested"])) for r in rows] == [
            ("ws-1-dev", True, "ws", "https://k8s.example.com", False),
            (("ws-7-" + "a" * 63)[:63], True, "ws", "https://k8s.example.com", False)]
        assert len({r["uid"] for r in rows}) == 2 and all(len(r["uid"]) == 32 for r in rows)
        assert schema_differences(db.engine) == []
        from provider_admin.kube import object_names
        from provider_admin.workspaces.builds import spec_for

        workspace = db.session.get(models.Workspace, 1)
        assert object_names(spec_for(workspace)) == {"pod": "ws-1-dev", "pvc": "ws-1-dev-home",
                                                     "service_account": "ws-1-dev", "service": "ws-1-dev"}
        assert spec_for(workspace).legacy_id == 1
        db.session.remove()
        flask_db(app, "downgrade", "0003")
        db.engine.dispose()


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


def test_workspace_settings_upgrade_from_0007_leaves_existing_workspaces_unknown(database_before_0006):
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_before_0006, "AUTO_MIGRATE": False,
                      "TESTING": True, "SECRET_KEY": "x", "ENCRYPTION_KEY": ENCRYPTION_KEY})
    with app.app_context():
        flask_db(app, "upgrade", "0007")
        with db.engine.begin() as conn:
            now = "2026-11-01 00:00:00+00:00"
            conn.execute(sa.text(
                "INSERT INTO users (id, email, username, role, active, created_at, session_version) "
                "VALUES (1, 'ada@example.com', 'ada', 'member', true, :now, 1)"), {"now": now})
            conn.execute(sa.text("INSERT INTO organizations (id, name, created_at) VALUES (1, 'Acme', :now)"),
                         {"now": now})
            conn.execute(sa.text(
                "INSERT INTO providers (id, name, uid, cluster_address, namespace, is_builtin, e2e_encryption, "
                "external_ssh, access_url, cordoned, status, consecutive_failures, display_version, "
                "check_generation, created_at, updated_at, version) VALUES (1, 'east', "
                "'00000000-0000-0000-0000-000000000001', 'https://k8s.example.com', 'ws', false, true, false, "
                "'https://coder.example.com', false, 'ready', 0, 1, 1, :now, :now, 1)"), {"now": now})
            conn.execute(sa.text(
                "INSERT INTO workspaces (id, name, owner_id, organization_id, provider_id, image, cpu, memory, "
                "disk, status, delete_requested, uid, object_base, legacy_labels, namespace, cluster_address, "
                "created_at, updated_at) VALUES (1, 'dev', 1, 1, 1, 'img', '1', '1Gi', '1Gi', 'running', false, "
                "'3a7f0c1e9b4444444444444444444444', 'ws-3a7f0c1e9b-dev', false, 'ws', "
                "'https://k8s.example.com', :now, :now)"), {"now": now})

        flask_db(app, "upgrade")

        assert db.session.execute(sa.text("SELECT settings FROM workspaces")).scalar() is None
        assert schema_differences(db.engine) == []
        from provider_admin.workspaces import settings
        from provider_admin.workspaces.builds import spec_for

        workspace = db.session.get(models.Workspace, 1)
        assert workspace.settings is None and settings.outdated(workspace) is None  # unknown, not outdated
        assert spec_for(workspace).e2e_encryption is True  # the provider's settings stand in
        workspace.settings = settings.current(workspace.provider)
        db.session.commit()
        db.session.expire_all()
        assert db.session.get(models.Workspace, 1).settings["access_url"] == "https://coder.example.com"
        db.session.remove()
        flask_db(app, "downgrade", "0007")
        assert "settings" not in {c["name"] for c in sa.inspect(db.engine).get_columns("workspaces")}
        db.engine.dispose()


def test_scheduler_heartbeats_upgrade_from_0011_keeps_the_check_history(empty_sqlite_app):
    flask_db(empty_sqlite_app, "upgrade", "0011")
    with db.engine.begin() as connection:
        connection.execute(sa.text(
            "INSERT INTO providers (id, name, uid, namespace, is_builtin, e2e_encryption, external_ssh, "
            "cordoned, status, consecutive_failures, display_version, check_generation, created_at, "
            "updated_at, version) VALUES (1, 'east', '00000000-0000-0000-0000-000000000001', 'ws', 0, 0, 0, "
            "0, 'ready', 0, 1, 1, '2026-11-01', '2026-11-01', 1)"))
        connection.execute(sa.text(
            "INSERT INTO provider_checks (provider_id, checked_at, ok, category, message, trigger, worker, "
            "superseded) VALUES (1, '2026-11-01', 1, 'ready', 'Ready', 'scheduled', 'old-host:7:1f', 0)"))
    flask_db(empty_sqlite_app, "upgrade")
    assert "scheduler_heartbeats" in tables(db.engine)
    assert schema_differences(db.engine) == []
    check = db.session.scalar(sa.select(models.ProviderCheck))
    assert (check.worker, check.checked_by) == ("old-host:7:1f", None)
    assert check.origin == "Scheduler on old-host (pid 7)"
    db.session.remove()
    flask_db(empty_sqlite_app, "downgrade", "0011")
    assert "scheduler_heartbeats" not in tables(db.engine)
    assert "checked_by" not in {c["name"] for c in sa.inspect(db.engine).get_columns("provider_checks")}
