"""Writes that lose a race to another request, answered as such, never as a 500.

Two people acting on one thing at the same moment: the later write finds it changed (the
version-checked UPDATE or DELETE matches no row: StaleDataError), deleted (ObjectDeletedError,
or a row that refers to it refused: IntegrityError), or was turned away by a service
(`Conflict`); on PostgreSQL its transaction may also be aborted in favour of the other one
(a deadlock, a serialization failure: `LostRace`). Whichever write path it happens on, the
answer is the current state: 404 saying that the thing was deleted, else 409 saying that it
changed meanwhile and nothing was done.
"""
import logging

from flask import Flask, request
from sqlalchemy import event, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm.exc import ObjectDeletedError, StaleDataError
from werkzeug.exceptions import NotFound

from .errors import error_response
from .extensions import db
from .problems import is_api_request, problem

log = logging.getLogger(__name__)


# PostgreSQL's SQLSTATEs for a transaction it aborted to let a concurrent one through.
LOST_RACE_STATES = ("40P01", "40001")  # deadlock detected, serialization failure


class LostRace(OperationalError):
    """A transaction the database aborted in favour of a concurrent one: still an
    OperationalError for the code that catches those, answered like any other lost race."""


@event.listens_for(Engine, "handle_error", retval=True)
def _aborted_for_another(context):
    if getattr(context.original_exception, "sqlstate", None) in LOST_RACE_STATES \
            and isinstance(context.sqlalchemy_exception, OperationalError):
        return LostRace(context.statement, context.parameters, context.original_exception)
    return None


class Conflict(Exception):
    """The thing changed since it was read: the change was not made."""


class Gone(NotFound):
    """The thing the address names was deleted (said so, unlike an address that never
    named anything)."""

    def __init__(self, what: str):
        super().__init__(f"The {what} was deleted.")
        self.what = what


def _things():
    """The view argument naming each kind of thing, its model, and what people call it."""
    from .models import Organization, Provider, User, Workspace

    return {"provider_id": (Provider, "provider"), "workspace_id": (Workspace, "workspace"),
            "organization_id": (Organization, "organization"), "user_id": (User, "user")}


def hold(model, ident: int):
    """The `model` row `ident` read again under its lock, kept until the transaction ends, or
    None: a conditional change (If-Match) then checks and writes with nothing slipping in
    between. PostgreSQL locks the row but not its key (rows referring to it may still be
    added); SQLite has no row locks, so a write that changes nothing takes its write lock."""
    if db.session.get_bind().dialect.name == "sqlite":
        table = model.__table__
        db.session.execute(update(table).where(table.c.id == ident).values(id=table.c.id))
        return db.session.get(model, ident, populate_existing=True)
    return db.session.get(model, ident, with_for_update={"key_share": True}, populate_existing=True)


def init_app(app: Flask) -> None:
    for error in (Conflict, StaleDataError, ObjectDeletedError, IntegrityError, LostRace):
        app.register_error_handler(error, lost_race)
    app.register_error_handler(Gone, gone)


def lost_race(error: Exception):
    """The request's write lost to a concurrent one: roll back, then say what holds now."""
    db.session.rollback()
    # An IntegrityError is a lost race only as far as the code knows: its text goes to the log,
    # so that a constraint the code breaks on its own shows there instead of as a conflict.
    log.log(logging.WARNING if isinstance(error, IntegrityError) else logging.INFO,
            "%s %s lost a race to a concurrent change: %s", request.method, request.path,
            type(error).__name__, exc_info=isinstance(error, IntegrityError))
    named = []
    for argument, (model, name) in _things().items():
        thing_id = (request.view_args or {}).get(argument)
        if thing_id is None:
            continue
        if db.session.get(model, thing_id) is None:
            return gone(Gone(name))
        named.append(name)
    return changed(f"The {named[0]}" if named else "What this change depends on")


def changed(what: str):
    """409: `what` ("The provider") was changed by someone else at the same moment, so this
    change was not made."""
    if is_api_request():
        return problem(409, "Changed meanwhile", f"{what} was changed by another request at the same moment, "
                                                 "so this change was not made. Read it again and retry if still needed.")
    return error_response(409, f"{what} was changed by someone else at the same moment, so this change "
                               "was not made. Reload to see it as it is now, and try again if still needed.")


def gone(error: Gone):
    return error_response(404, error.description)
