"""The README's configuration table is the truth: every variable in it is read by the app,
with the documented default, and a value set in the environment reaches the app.

The rows are read from the README itself, so a row added later is checked too. A default
that is a value (`30`, `true`, unset) is checked generically; a default that describes an
effect ("generated into …") needs its check in EFFECTS, and the test says so when one is
missing.
"""
import json
import os
import re
from typing import NamedTuple

import click
import pytest
from flask import Flask

from provider_admin import ROOT, create_app
from provider_admin.extensions import db
from provider_admin.models import Provider

from .conftest import ENCRYPTION_KEY
from .test_builtin_provider import pod  # noqa: F401  (fixture)

README = ROOT / "README.md"
SOURCES = [*(ROOT / "provider_admin").rglob("*.py"), *(ROOT / "templates").rglob("*.html")]
UNSET = object()


class Setting(NamedTuple):
    variable: str  # as documented: PROVIDER_ADMIN_CHECK_INTERVAL, DATABASE_URL
    default: str  # the default column's text
    meaning: str

    @property
    def key(self) -> str:
        """The app.config key."""
        return self.variable.removeprefix("PROVIDER_ADMIN_")


def documented_settings() -> list[Setting]:
    """Every row of every table in the README's Configuration section."""
    text = README.read_text()
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    settings = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not line.lstrip().startswith("|"):
            continue
        for variable in re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0]):  # a merged row may name two
            settings.append(Setting(variable, cells[1], cells[2]))
    return settings


SETTINGS = documented_settings()


def parsed(text: str):
    """A value as the app parses it from the environment."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def literal(default: str):
    """The value a default cell states: one `literal` (parsed like the environment's values),
    unset (None), empty (""), or UNSET when the cell describes something instead."""
    if default.lower() == "unset":
        return None
    if default.lower() == "empty":
        return ""
    found = re.fullmatch(r"`([^`]*)`", default)
    return parsed(found.group(1)) if found else UNSET


def another(value, meaning: str):
    """A value to set: the meaning's example ("e.g. `…`") when it has one, since a setting may
    be validated at start; else a value of the same kind, different from `value`."""
    example = re.search(r"e\.g\. `([^`]+)`", meaning)
    if example and parsed(example.group(1)) != value:
        return parsed(example.group(1))
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 7 if isinstance(value, int) else value + 1.5
    return f"{value}-changed" if value else "X-Changed-Value"


def in_environment(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@pytest.fixture
def environment(tmp_path, monkeypatch):
    """No stray settings, an instance folder of its own, no migrations and no cluster."""
    for name in list(os.environ):
        if name.startswith("PROVIDER_ADMIN_") or name in ("DATABASE_URL", "KUBERNETES_SERVICE_HOST"):
            monkeypatch.delenv(name)
    instance = tmp_path / "instance"
    monkeypatch.setenv("PROVIDER_ADMIN_INSTANCE_PATH", str(instance))
    monkeypatch.setenv("PROVIDER_ADMIN_AUTO_MIGRATE", "false")
    return instance


def started(app: Flask) -> bool:
    """Whether the app started its in-process scheduler (stopped again here)."""
    scheduler = app.extensions.get("check_scheduler")
    if scheduler is None:
        return False
    scheduler.shutdown(wait=False)
    app.extensions["check_sweeper"].shutdown(wait=False)
    return True


def under_flask_run() -> Flask:
    """create_app as `flask run` calls it (its click context is named run)."""
    with click.Context(click.Command("run"), info_name="run"):
        return create_app()


# Defaults that describe an effect: each checks the default and a value set -----------------

def database_url(setting, environment, monkeypatch, request):
    assert create_app().config["SQLALCHEMY_DATABASE_URI"] == \
        f"sqlite:///{environment / 'provider_admin.sqlite'}"
    environment.mkdir(exist_ok=True)
    (environment / "config.py").write_text('DATABASE_URL = "sqlite:////srv/from-the-file.sqlite"\n')
    assert create_app().config["SQLALCHEMY_DATABASE_URI"] == "sqlite:////srv/from-the-file.sqlite"
    monkeypatch.setenv("DATABASE_URL", "postgres://u@db/from-the-environment")
    assert create_app().config["SQLALCHEMY_DATABASE_URI"] == \
        "postgresql+psycopg://u@db/from-the-environment"  # the environment wins over the file


def instance_path(setting, environment, monkeypatch, request):
    tmp = environment.parent
    monkeypatch.chdir(tmp)
    monkeypatch.setenv("PROVIDER_ADMIN_INSTANCE_PATH", "relative/instance")
    (tmp / "relative" / "instance").mkdir(parents=True)
    (tmp / "relative" / "instance" / "config.py").write_text("CHECK_HISTORY = 7\n")
    app = create_app()
    assert app.instance_path == str(tmp / "relative" / "instance")
    assert app.config["CHECK_HISTORY"] == 7  # its config.py is read
    assert (tmp / "relative" / "instance" / "secret_key").exists()
    # The default: the project's instance folder, wherever the app is started from (given
    # keys and database, so that nothing is written there).
    monkeypatch.delenv("PROVIDER_ADMIN_INSTANCE_PATH")
    monkeypatch.setenv("PROVIDER_ADMIN_SECRET_KEY", "s")
    monkeypatch.setenv("PROVIDER_ADMIN_ENCRYPTION_KEY", ENCRYPTION_KEY)
    monkeypatch.setenv("DATABASE_URL", "sqlite:////srv/x.sqlite")
    assert create_app().instance_path == str(ROOT / "instance")


def generated_key(file: str):
    def check(setting, environment, monkeypatch, request):
        app = create_app()
        assert (environment / file).read_text().strip() == app.config[setting.key]
        (environment / file).unlink()
        given = ENCRYPTION_KEY if setting.key == "ENCRYPTION_KEY" else "given-secret"
        monkeypatch.setenv(setting.variable, given)
        assert create_app().config[setting.key] == given
        assert not (environment / file).exists()
    return check


def run_scheduler(setting, environment, monkeypatch, request):
    assert create_app().config["RUN_SCHEDULER"] is None
    assert not started(create_app())
    assert started(under_flask_run())
    monkeypatch.setenv(setting.variable, "false")
    assert not started(under_flask_run())
    monkeypatch.setenv(setting.variable, "true")
    assert started(create_app())


def builtin_namespace(setting, environment, monkeypatch, request):
    request.getfixturevalue("pod")  # inside Kubernetes, in namespace ws
    monkeypatch.setenv("DATABASE_URL", request.getfixturevalue("database_url"))
    monkeypatch.setenv("PROVIDER_ADMIN_BUILTIN_PROVIDER", "in-cluster")

    def builtin_namespace_after_start():
        app = create_app()
        with app.app_context():
            namespace = db.session.scalar(db.select(Provider.namespace).filter_by(is_builtin=True))
            db.engine.dispose()
        return namespace

    assert builtin_namespace_after_start() == "ws"
    monkeypatch.setenv(setting.variable, "workspaces")
    assert builtin_namespace_after_start() == "workspaces"


def oidc_issuer(setting, environment, monkeypatch, request):
    assert create_app().extensions["oidc"] is None  # unset: single sign-on is off
    monkeypatch.setenv(setting.variable, "https://keycloak.example.com/realms/acme/")
    with pytest.raises(ValueError, match="PROVIDER_ADMIN_OIDC_CLIENT_ID: must be set"):
        create_app()  # an issuer needs its client
    monkeypatch.setenv("PROVIDER_ADMIN_OIDC_CLIENT_ID", "provider-admin")
    assert create_app().extensions["oidc"].issuer == "https://keycloak.example.com/realms/acme"


EFFECTS = {
    "DATABASE_URL": database_url,
    "PROVIDER_ADMIN_INSTANCE_PATH": instance_path,
    "PROVIDER_ADMIN_SECRET_KEY": generated_key("secret_key"),
    "PROVIDER_ADMIN_ENCRYPTION_KEY": generated_key("encryption_key"),
    "PROVIDER_ADMIN_RUN_SCHEDULER": run_scheduler,
    "PROVIDER_ADMIN_BUILTIN_NAMESPACE": builtin_namespace,
    "PROVIDER_ADMIN_OIDC_ISSUER": oidc_issuer,
}


# The tests ------------------------------------------------------------------------------

def test_the_table_is_found():
    names = {setting.variable for setting in SETTINGS}
    assert len(SETTINGS) >= 15 and len(names) == len(SETTINGS), SETTINGS
    assert {"DATABASE_URL", "PROVIDER_ADMIN_CHECK_INTERVAL"} <= names


def read_by_the_app(setting: Setting) -> bool:
    """The setting is used somewhere in the code or templates, by its config key or its
    variable's name (a line in config.Defaults alone is not a use), or by Flask itself."""
    if setting.key in Flask.default_config:
        return True
    declaration = re.compile(rf"^\s+{setting.key}\s*=")
    used = re.compile(rf"\b({setting.key}|{setting.variable})\b")
    for path in SOURCES:
        for line in path.read_text().splitlines():
            if used.search(line) and not declaration.match(line):
                return True
    return False


@pytest.mark.parametrize("setting", SETTINGS, ids=[s.variable for s in SETTINGS])
def test_a_documented_setting_is_read_with_its_documented_default(setting, environment,
                                                                  monkeypatch, request):
    assert read_by_the_app(setting), f"{setting.variable} is documented but never read"
    monkeypatch.delenv(setting.variable, raising=False)
    effect = EFFECTS.get(setting.variable)
    if effect is not None:
        effect(setting, environment, monkeypatch, request)
        return
    default = literal(setting.default)
    assert default is not UNSET, (
        f"{setting.variable}: its default {setting.default!r} is not a value; add a check of "
        "what it does to EFFECTS")
    assert create_app().config.get(setting.key) == default, f"{setting.variable}'s default"
    value = another(default, setting.meaning)
    monkeypatch.setenv(setting.variable, in_environment(value))
    assert create_app().config[setting.key] == value
