"""Database binding and migrations at start; writes that lose a race to another request;
requests made while the database is away."""
import fcntl
import functools
import logging
import os
import re
import threading
import time
from pathlib import Path

import flask_migrate
from alembic.script import ScriptDirectory
from flask import Flask, current_app, g, request
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import (DBAPIError, DisconnectionError, IntegrityError, InterfaceError, OperationalError,
                            TimeoutError as PoolTimeout)

from .extensions import db, migrate

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
UNREACHABLE = "The database is not reachable at the moment. Try again in a moment."
UNREACHABLE_RETRY_AFTER = "5"  # seconds, in the 503's Retry-After
_PENDING = "migration_pending"  # app.extensions: the start's migration waits for the database
_AFTER = "after_migration"  # app.extensions: what waits for it (see when_migrated)
_after_lock = threading.Lock()
MIGRATE_RETRY_MAX = 30.0  # seconds between two tries of the start's migration, at most


def init_app(app: Flask) -> None:
    _connect_timeout(app)
    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS))
    if app.config["AUTO_MIGRATE"]:
        upgrade_or_wait(app)
    for kind in (OperationalError, InterfaceError, DisconnectionError, PoolTimeout):
        app.register_error_handler(kind, _database_error)
    # Runs before Flask-SQLAlchemy's session removal (teardowns run last registered first).
    app.teardown_appcontext(lambda _error: rollback_quietly())
    app.before_request(_refuse_while_migration_pending)


def _connect_timeout(app: Flask) -> None:
    """A database host that went away without a word makes a new connection wait for the
    DATABASE_CONNECT_TIMEOUT, not for the operating system's minutes."""
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        return
    options = app.config["SQLALCHEMY_ENGINE_OPTIONS"] = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    connect_args = options["connect_args"] = dict(options.get("connect_args") or {})
    connect_args.setdefault("connect_timeout", max(1, round(float(app.config["DATABASE_CONNECT_TIMEOUT"]))))


@event.listens_for(Engine, "connect")
def _sqlite_foreign_keys(dbapi_connection, _record) -> None:
    """SQLite enforces foreign keys (ON DELETE CASCADE / SET NULL) only when asked, per connection."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def upgrade(app: Flask) -> None:
    """Bring the schema up to date; a file lock keeps concurrent starts from racing."""
    lock_path = Path(app.instance_path) / ".migrate.lock"
    with open(lock_path, "w") as lock, app.app_context():
        fcntl.flock(lock, fcntl.LOCK_EX)
        flask_migrate.upgrade(directory=str(MIGRATIONS))


def upgrade_or_wait(app: Flask) -> None:
    """Migrate at start; with the database away, start anyway: requests get the 503 of an
    unreachable database and /readyz is false, while a thread tries the migration again (1 s,
    then twice as long each time, at most MIGRATE_RETRY_MAX) until the database answers."""
    try:
        upgrade(app)
    except Exception as error:
        if not is_unreachable(error):
            raise
        log.warning("The database is not reachable (%s): starting without it; the migrations are "
                    "applied when it answers.", describe(error))
        _start_migrating(app)


def _start_migrating(app: Flask) -> None:
    app.extensions[_PENDING] = os.getpid()  # the process whose thread tries
    threading.Thread(target=_upgrade_when_back, args=(app,), daemon=True, name="migrate-at-start").start()


def _upgrade_when_back(app: Flask) -> None:
    wait = 1.0
    while True:
        time.sleep(wait)
        try:
            upgrade(app)
        except Exception as error:
            if not is_unreachable(error):
                log.exception("The migrations at start failed; run `flask --app app db upgrade`.")
                app.extensions.pop(_PENDING, None)  # /readyz says the schema is behind
                return
            log.warning("The database is still not reachable (%s); migrations wait.", describe(error))
            wait = min(wait * 2, MIGRATE_RETRY_MAX)
            continue
        with _after_lock:
            app.extensions.pop(_PENDING, None)
            waiting = app.extensions.pop(_AFTER, [])
        log.info("The database answers: migrations applied.")
        with app.app_context():
            for action in waiting:
                try:
                    action(app)
                except Exception:
                    log.exception("%s failed after the migrations", getattr(action, "__qualname__", action))
        return


def when_migrated(app: Flask, action) -> None:
    """Run `action(app)` (start-up work on the schema) now, or, while the start's migration
    waits for the database, once it has run."""
    with _after_lock:
        if app.extensions.get(_PENDING) is not None:
            app.extensions.setdefault(_AFTER, []).append(action)
            return
    action(app)


def _refuse_while_migration_pending():
    """Until the start's migration ran, the schema may be behind the code: every request but
    the probes gets the unreachable database's 503."""
    pending = current_app.extensions.get(_PENDING)
    if pending is None or request.blueprint == "health" or request.endpoint == "static":
        return None
    if pending != os.getpid():  # forked after the start (gunicorn --preload): its thread stayed behind
        _start_migrating(current_app._get_current_object())
    return _unreachable_response()


@functools.cache
def script_head() -> str:
    """The revision this code's migrations end at (read from the files once per process)."""
    heads = ScriptDirectory(str(MIGRATIONS)).get_heads()
    return ",".join(sorted(heads))


def _database_error(error: Exception):
    """Errors a request can simply send again, answered 503 with Retry-After instead of a 500:
    SQLite's "database is locked" (another write held it past the busy timeout), and the
    database being away (refused, unreachable, its connection lost or ended by the server)."""
    from .errors import error_response

    if is_locked(error):
        rollback_quietly()
        response = error_response(503, "The database was busy with another change. Try again.")
        response.headers["Retry-After"] = "1"
        return response
    if not is_unreachable(error):
        raise error
    log.warning("%s %s: the database is not reachable: %s", request.method, request.path, describe(error))
    rollback_quietly()
    return _unreachable_response()


def _unreachable_response():
    from .errors import error_response

    # The page must not ask the database, which is away, who is signed in.
    g._login_user = current_app.login_manager.anonymous_user()
    response = error_response(503, UNREACHABLE)
    response.headers["Retry-After"] = UNREACHABLE_RETRY_AFTER
    return response


def rollback_quietly() -> None:
    """End the transaction; a dead connection is discarded by the pool (pool_pre_ping tests
    the others before they are used again), the session itself stays usable. A connection
    that died while its transaction was open fails the rollback: said in the log, not raised,
    so that removing the session afterwards succeeds. A request that never used the database
    (the badge poll's 204 from the cache, a probe) has no session: none is made for this."""
    if not db.session.registry.has():
        return
    try:
        db.session.rollback()
    except Exception as error:
        log.warning("could not roll back: %s", describe(error))


def is_locked(error: Exception) -> bool:
    return isinstance(error, OperationalError) and "database is locked" in str(error.orig)


def is_unreachable(error: BaseException) -> bool:
    """The database is away: refused or unreachable, its connection lost or ended by the server
    (psycopg's errors without a SQLSTATE, class 08 "connection exception", 57P "operator
    intervention": pg_terminate_backend, a shutdown), or no pooled connection came free."""
    if isinstance(error, (DisconnectionError, PoolTimeout)):
        return True
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    if not isinstance(error, (OperationalError, InterfaceError)):
        return False
    if type(error.orig).__module__.startswith("psycopg"):
        state = getattr(error.orig, "sqlstate", None)
        return state is None or state.startswith(("08", "57P"))
    return "unable to open database file" in str(error.orig)


def describe(error: BaseException) -> str:
    """The first line of the driver's message, for a one-line log entry."""
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def duplicate_columns(error: IntegrityError) -> set[str]:
    """The columns of the unique constraint a write broke, from SQLite's "UNIQUE constraint
    failed: users.email" or PostgreSQL's "Key (owner_id, name)=(…) already exists"."""
    text = str(error.orig)
    found = re.search(r"UNIQUE constraint failed: ([\w., ]+)", text) or re.search(r"Key \(([^)]*)\)=", text)
    return {column.strip().strip('"').split(".")[-1] for column in found.group(1).split(",")} if found else set()


class duplicate_at:
    """Around a write whose form checked uniqueness beforehand: when a concurrent request
    inserted the same value in between, the database's unique constraint refuses it. Roll
    back and put the message at the field named like the column: the field's own
    `validate_<field>` message (run again, it now finds the other row), else `message`.

        with duplicate_at(form, "name", message="You already have a workspace with this name.") as refused:
            db.session.add(workspace)
            db.session.commit()
        if not refused: ...saved...
    """

    def __init__(self, form, *fields: str, message: str = "This value was just taken by another change."):
        self.form, self.fields, self.message, self.refused = form, fields, message, False

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        if not isinstance(error, IntegrityError):
            return False
        fields = [name for name in self.fields if name in duplicate_columns(error)]
        if not fields:
            return False
        db.session.rollback()
        field = getattr(self.form, fields[0])
        field.errors.append(self._message(field))
        self.refused = True
        return True

    def _message(self, field) -> str:
        from wtforms.validators import ValidationError

        try:
            getattr(self.form, f"validate_{field.name}", lambda field: None)(field)
        except ValidationError as error:
            return str(error)
        return self.message

    def __bool__(self) -> bool:
        return self.refused
