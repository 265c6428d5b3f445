"""Database binding and migrations at start; writes that lose a race to another request."""
import fcntl
import functools
import re
from pathlib import Path

import flask_migrate
from alembic.script import ScriptDirectory
from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from .extensions import db, migrate

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def init_app(app: Flask) -> None:
    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS))
    if app.config["AUTO_MIGRATE"]:
        upgrade(app)
    app.register_error_handler(OperationalError, _busy)


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


@functools.cache
def script_head() -> str:
    """The revision this code's migrations end at (read from the files once per process)."""
    heads = ScriptDirectory(str(MIGRATIONS)).get_heads()
    return ",".join(sorted(heads))


def _busy(error: OperationalError):
    """SQLite answers "database is locked" when another write held it past the busy timeout:
    the request can simply be sent again, so say that instead of a 500."""
    from .errors import error_response

    if not is_locked(error):
        raise error
    db.session.rollback()
    response = error_response(503, "The database was busy with another change. Try again.")
    response.headers["Retry-After"] = "1"
    return response


def is_locked(error: Exception) -> bool:
    return isinstance(error, OperationalError) and "database is locked" in str(error.orig)


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
