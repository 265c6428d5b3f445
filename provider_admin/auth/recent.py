"""The signed-in user as seen a few seconds ago, kept in the app's recent-users cache
(caches.py).

Only for answers that reveal nothing but "nothing changed" (the badge poll's 204): they may
pass on the role and active flag read up to RECENT_USER_SECONDS ago, with one small
statement instead of Flask-Login's ORM load. Everything else loads the user in full.
"""
from typing import NamedTuple

from flask import current_app, request, session
from sqlalchemy import bindparam, select

from .. import sessions
from ..caches import caches
from ..extensions import db, login_manager
from ..models import User
from ..web import trusted_header_email


class RecentUser(NamedTuple):
    role: str
    active: bool
    email: str
    session_version: int


_recent_user_statement = select(User.role, User.active, User.email, User.session_version).where(
    User.id == bindparam("id"))


def recent_session_user() -> RecentUser | None:
    """The session's user, as read at most RECENT_USER_SECONDS ago (caches.py); None whenever
    Flask-Login would do more than load that user (no user id in the session, session
    protection that would act, a trusted header naming someone else) or the user is gone or
    inactive."""
    user_id = session.get("_user_id")
    if user_id is None or not str(user_id).isdigit() or not _session_identity_holds():
        return None
    user = caches().recent_users.fetch(int(user_id), lambda: _read_user(int(user_id)))
    if user is None:
        return None
    email = trusted_header_email(request)
    if not user.active or (email and email != user.email) or not sessions.holds(user.session_version):
        return None
    return user


def _read_user(user_id: int) -> RecentUser | None:
    row = db.session.connection().execute(_recent_user_statement, {"id": user_id}).first()
    if row is None:
        return None
    return RecentUser(row.role, bool(row.active), row.email.lower(), row.session_version)


def _session_identity_holds() -> bool:
    """True unless Flask-Login's session protection would act on this request."""
    mode = current_app.config.get("SESSION_PROTECTION", login_manager.session_protection)
    if mode not in ("basic", "strong"):
        return True
    return session.get("_id") == login_manager._session_identifier_generator()
