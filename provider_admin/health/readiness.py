"""Whether this process can serve: the database answers within READY_TIMEOUT, and its schema
is at the revision this code's migrations end at.

The checks run on an engine of their own (one pooled connection, a short connect and statement
timeout), so that a probe neither waits behind the app's pool nor holds a connection the pages
need. The answer names the check that failed, never the driver's message (it may hold the
database's address or user): that goes to the log.
"""
from __future__ import annotations

import logging
from typing import NamedTuple

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from flask import Flask, current_app
from sqlalchemy.engine import Engine

from ..database import MIGRATIONS, script_head
from ..extensions import db

log = logging.getLogger(__name__)
_ENGINE = "readiness_engine"


class Readiness(NamedTuple):
    database: str  # "ok" or "unreachable"
    migrations: str  # "ok", "behind", "ahead", "not applied" or "unknown" (no database)

    @property
    def ready(self) -> bool:
        return self.database == "ok" and self.migrations == "ok"


def check() -> Readiness:
    """Connect, then read the schema's revision: two statements on a pooled connection."""
    try:
        with _engine().connect() as connection:
            connection.execute(sa.text("SELECT 1"))
            try:
                current = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
            except sa.exc.DBAPIError:
                return Readiness("ok", "not applied")
    except sa.exc.SQLAlchemyError as error:
        log.warning("readiness: the database did not answer: %s", error)
        return Readiness("unreachable", "unknown")
    return Readiness("ok", _compare(",".join(sorted(current))))


def _compare(current: str) -> str:
    head = script_head()
    if current == head:
        return "ok"
    if not current:
        return "not applied"
    return "ahead" if current not in _known_revisions() else "behind"


def _known_revisions() -> set[str]:
    return {script.revision for script in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}


def _engine() -> Engine:
    app = current_app._get_current_object()
    engine = app.extensions.get(_ENGINE)
    if engine is None:
        engine = app.extensions[_ENGINE] = _make_engine(app)
    return engine


def _make_engine(app: Flask) -> Engine:
    timeout = float(app.config["READY_TIMEOUT"])
    url = db.engine.url
    if url.get_backend_name() == "sqlite":
        return sa.create_engine(url, connect_args={"timeout": timeout}, pool_size=1, max_overflow=1,
                                pool_timeout=timeout, pool_pre_ping=True)
    engine = sa.create_engine(url, connect_args={"connect_timeout": max(1, round(timeout))},
                              pool_size=1, max_overflow=1, pool_timeout=timeout, pool_pre_ping=True)

    @sa.event.listens_for(engine, "connect")
    def _statement_timeout(dbapi_connection, _record) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET statement_timeout = {int(timeout * 1000)}")
        dbapi_connection.commit()

    return engine
