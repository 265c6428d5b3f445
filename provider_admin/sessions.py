"""Signed-in sessions that the server can end.

The session cookie is signed, so only the server can write it, but a copy saved before
sign-out would still be valid. Each session therefore carries the user's `session_version`
from when it started, and the times it started and was last used: bumping the version ends
every session of that user at once (sign-out, a password or role change, deactivation), and
the idle and absolute lifetimes are checked on every request, not left to the cookie's age.
"""
import time

from flask import Flask, current_app, session
from flask_login import login_user, logout_user
from sqlalchemy import event, inspect

from .models import User

VERSION, STARTED, SEEN = "_v", "_started", "_seen"
# "Last used" is written back at most this often, so that most answers send no new cookie.
SEEN_RESOLUTION = 60


def cookie_attributes(app: Flask, framed_by_other_origins: bool) -> None:
    """Cookies for a frame on a portal's page: a browser sends a cookie with a frame's requests
    when the portal is another site only if it is SameSite=None, and takes SameSite=None only
    with Secure (browsers count http://localhost as secure; elsewhere the app needs https).
    Partitioned (CHIPS) needs Secure too. Lax stays otherwise: it is the better default."""
    config = app.config
    if framed_by_other_origins:
        config["SESSION_COOKIE_SAMESITE"] = config["REMEMBER_COOKIE_SAMESITE"] = "None"
    if framed_by_other_origins or config.get("SESSION_COOKIE_PARTITIONED"):
        config["SESSION_COOKIE_SECURE"] = config["REMEMBER_COOKIE_SECURE"] = True


def start(user) -> None:
    """Sign in with a new session: nothing of the visitor's earlier session (its CSRF
    secret included) carries over."""
    session.clear()
    login_user(user)
    now = int(time.time())
    session.update({VERSION: user.session_version, STARTED: now, SEEN: now})


def end() -> None:
    """Sign out of this session."""
    logout_user()
    session.clear()


def end_all(user) -> None:
    """End every session of the user (committed with the caller's transaction)."""
    user.session_version = (user.session_version or 0) + 1


def keep_current(user) -> None:
    """After ending all of a user's sessions, keep the one making the change."""
    session[VERSION] = user.session_version


def holds(version: int) -> bool:
    """Whether the request's session is still valid for a user whose version is `version`;
    marks it used."""
    now = int(time.time())
    started, seen = session.get(STARTED), session.get(SEEN)
    if session.get(VERSION) != version or not isinstance(started, int) or not isinstance(seen, int):
        return False
    config = current_app.config
    if now - seen > int(config["SESSION_IDLE_TIMEOUT"]) or now - started > int(config["SESSION_LIFETIME"]):
        return False
    if now - seen >= SEEN_RESOLUTION:
        session[SEEN] = now
    return True


# What ends a user's sessions, whichever code path changes it (the Users page, the command
# line, a later API or identity-provider sync): one rule, kept by the ORM.
ENDING_CHANGES = ("password_hash", "role", "active")


@event.listens_for(User, "before_update")
def _end_sessions_on_change(mapper, connection, user) -> None:
    state = inspect(user)
    if any(state.attrs[name].history.has_changes() for name in ENDING_CHANGES) and \
            not state.attrs.session_version.history.has_changes():
        end_all(user)
