"""Database binding and migrations at start."""
import fcntl
from pathlib import Path

import flask_migrate
from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

from .extensions import db, migrate

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def init_app(app: Flask) -> None:
    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS))
    if app.config["AUTO_MIGRATE"]:
        upgrade(app)


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
