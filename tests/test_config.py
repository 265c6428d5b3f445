"""Configuration layers, DATABASE_URL, and the keys generated into the instance folder."""
import multiprocessing
import os
import secrets
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from werkzeug.middleware.proxy_fix import ProxyFix

from provider_admin import config, create_app

from .conftest import ENCRYPTION_KEY


@pytest.fixture
def instance(tmp_path, monkeypatch):
    """An empty instance folder, and an environment without stray settings."""
    for name in list(os.environ):
        if name.startswith("PROVIDER_ADMIN_") or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    path = tmp_path / "instance"
    monkeypatch.setenv("PROVIDER_ADMIN_INSTANCE_PATH", str(path))
    monkeypatch.setenv("PROVIDER_ADMIN_AUTO_MIGRATE", "false")  # no database needed here
    return path


def test_defaults(instance):
    app = create_app()
    assert app.instance_path == str(instance)
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{instance / 'provider_admin.sqlite'}"
    assert (app.config["CHECK_INTERVAL"], app.config["CHECK_TIMEOUT"], app.config["CHECK_FAILURE_THRESHOLD"]) == \
        (30, 5.0, 2)
    assert app.config["TRUSTED_HEADER"] is None and app.config["PROXY_FIX"] is False
    assert app.config["WTF_CSRF_ENABLED"] is not False
    assert app.config["WTF_CSRF_TIME_LIMIT"] >= 8 * 3600  # a page left open for a working day still submits
    assert not isinstance(app.wsgi_app, ProxyFix)


@pytest.mark.parametrize("name, value, key, expected", [
    ("CHECK_INTERVAL", "10", "CHECK_INTERVAL", 10),
    ("CHECK_TIMEOUT", "2.5", "CHECK_TIMEOUT", 2.5),
    ("CHECK_FAILURE_THRESHOLD", "5", "CHECK_FAILURE_THRESHOLD", 5),
    ("TRUSTED_HEADER", "X-Forwarded-Email", "TRUSTED_HEADER", "X-Forwarded-Email"),
    ("PROXY_FIX", "true", "PROXY_FIX", True),
    ("SITE_ACCESS_URL", "https://dev.example.com", "SITE_ACCESS_URL", "https://dev.example.com"),
    ("SECRET_KEY", "from-the-environment", "SECRET_KEY", "from-the-environment"),
    ("SQLALCHEMY_DATABASE_URI", "sqlite:////tmp/other.sqlite", "SQLALCHEMY_DATABASE_URI",
     "sqlite:////tmp/other.sqlite"),
])
def test_environment_overrides_defaults(instance, monkeypatch, name, value, key, expected):
    monkeypatch.setenv(f"PROVIDER_ADMIN_{name}", value)
    assert create_app().config[key] == expected


def test_layers_in_order(instance, monkeypatch):
    instance.mkdir()
    (instance / "config.py").write_text("CHECK_INTERVAL = 60\nCHECK_TIMEOUT = 9.0\nCHECK_LEASE = 7\n")
    monkeypatch.setenv("PROVIDER_ADMIN_CHECK_TIMEOUT", "3")
    monkeypatch.setenv("PROVIDER_ADMIN_CHECK_LEASE", "8")
    app = create_app({"CHECK_LEASE": 9})
    # defaults < instance file < environment < test dict
    assert (app.config["CHECK_INTERVAL"], app.config["CHECK_TIMEOUT"], app.config["CHECK_LEASE"]) == (60, 3, 9)


def test_trusted_header_from_the_environment_signs_in(instance, monkeypatch, database_url):
    from provider_admin.extensions import db
    from provider_admin.models import Role, User

    monkeypatch.setenv("PROVIDER_ADMIN_TRUSTED_HEADER", "X-Forwarded-Email")
    monkeypatch.setenv("PROVIDER_ADMIN_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8")
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "TESTING": True})
    with app.app_context():
        db.session.add(User(email="root@example.com", username="root", role=Role.ADMIN.value))
        db.session.commit()
        response = app.test_client().get("/manage/users/", headers={"X-Forwarded-Email": "root@example.com"})
        db.engine.dispose()
    assert response.status_code == 200


def test_proxy_headers_and_url_prefix_when_configured(instance, monkeypatch, database_url):
    from provider_admin.extensions import db

    monkeypatch.setenv("PROVIDER_ADMIN_PROXY_FIX", "true")
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "TESTING": True})
    assert isinstance(app.wsgi_app, ProxyFix)
    with app.app_context():
        response = app.test_client().get("/login", headers={
            "X-Forwarded-Prefix": "/admin", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "intranet.example"})
        db.engine.dispose()
    assert response.headers["Location"] == "/admin/setup"


@pytest.mark.parametrize("url, expected", [
    ("postgres://u:p@db:5432/pa", "postgresql+psycopg://u:p@db:5432/pa"),
    ("postgresql://u:p@db/pa?sslmode=require", "postgresql+psycopg://u:p@db/pa?sslmode=require"),
    ("postgresql+psycopg://u@db/pa", "postgresql+psycopg://u@db/pa"),
    ("sqlite:////var/lib/pa.sqlite", "sqlite:////var/lib/pa.sqlite"),
])
def test_normalize_database_url(url, expected):
    assert config.normalize_database_url(url) == expected


@pytest.mark.parametrize("variable", ["DATABASE_URL", "PROVIDER_ADMIN_SQLALCHEMY_DATABASE_URI"])
def test_database_url_from_the_environment_uses_psycopg(instance, monkeypatch, variable):
    monkeypatch.setenv(variable, "postgres://admin:pw@db.internal:5432/provider_admin")
    app = create_app()
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://admin:pw@db.internal:5432/provider_admin"
    from provider_admin.extensions import db

    with app.app_context():
        assert db.engine.url.drivername == "postgresql+psycopg"  # made, not connected


def test_keys_are_generated_into_the_instance_folder_once(instance):
    first = create_app()
    for name, key in (("secret_key", "SECRET_KEY"), ("encryption_key", "ENCRYPTION_KEY")):
        path = instance / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
        assert path.read_text().strip() == first.config[key]
    assert len(first.config["SECRET_KEY"]) >= 32
    Fernet(first.config["ENCRYPTION_KEY"])  # a valid Fernet key
    second = create_app()
    assert (second.config["SECRET_KEY"], second.config["ENCRYPTION_KEY"]) == \
        (first.config["SECRET_KEY"], first.config["ENCRYPTION_KEY"])
    assert sorted(p.name for p in instance.iterdir() if "key" in p.name) == ["encryption_key", "secret_key"]


def test_given_keys_are_not_written(instance, monkeypatch):
    monkeypatch.setenv("PROVIDER_ADMIN_SECRET_KEY", "given-secret")
    monkeypatch.setenv("PROVIDER_ADMIN_ENCRYPTION_KEY", ENCRYPTION_KEY)
    app = create_app()
    assert (app.config["SECRET_KEY"], app.config["ENCRYPTION_KEY"]) == ("given-secret", ENCRYPTION_KEY)
    assert not (instance / "secret_key").exists() and not (instance / "encryption_key").exists()


def test_a_session_survives_a_restart(instance, database_url):
    from provider_admin.extensions import db

    def app():
        return create_app({"SQLALCHEMY_DATABASE_URI": database_url, "TESTING": True})

    first = app()
    client = first.test_client()
    with first.app_context():
        client.get("/setup")
        db.engine.dispose()
    with client.session_transaction() as session:
        token = session["csrf_token"]
    client.application = app()  # the same browser, the restarted app: its cookie still opens
    with client.session_transaction() as session:
        assert session["csrf_token"] == token
    with client.application.app_context():
        db.engine.dispose()


def _generate(folder: str) -> str:
    return config._key_file(Path(folder), "secret_key", lambda: secrets.token_hex(32))


def test_workers_starting_together_agree_on_the_key(tmp_path):
    # gunicorn without --preload starts every worker at once: none may crash or read a half-written key.
    context = multiprocessing.get_context("fork")
    with context.Pool(8) as pool:
        for attempt in range(5):
            folder = tmp_path / str(attempt)
            folder.mkdir()
            keys = pool.map(_generate, [str(folder)] * 16)
            assert len(set(keys)) == 1 and len(keys[0]) == 64
            assert [p.name for p in folder.iterdir()] == ["secret_key"]  # no temporary files left


# --- the instance folder's secrets ------------------------------------------------------

def mode(path) -> int:
    return path.stat().st_mode & 0o777


def test_a_first_start_makes_database_and_keys_readable_by_the_owner_only(tmp_path, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("PROVIDER_ADMIN_INSTANCE_PATH", str(tmp_path / "instance"))
    old_umask = os.umask(0o022)  # the usual umask, under which SQLite makes its file 0644
    try:
        app = create_app()
        with app.app_context():
            from provider_admin.extensions import db
            db.engine.dispose()
    finally:
        os.umask(old_umask)
    instance = tmp_path / "instance"
    assert mode(instance) == 0o700
    for name in ("provider_admin.sqlite", "secret_key", "encryption_key"):
        assert mode(instance / name) == 0o600, name


def test_an_existing_world_readable_database_is_restricted_at_start(tmp_path, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    instance = tmp_path / "instance"
    monkeypatch.setenv("PROVIDER_ADMIN_INSTANCE_PATH", str(instance))
    app = create_app()
    with app.app_context():
        from provider_admin.extensions import db
        db.engine.dispose()
    for name in ("provider_admin.sqlite", "encryption_key", "config.py"):
        (instance / name).touch()
        (instance / name).chmod(0o644)
    create_app()
    for name in ("provider_admin.sqlite", "encryption_key", "config.py"):
        assert mode(instance / name) == 0o600, name
