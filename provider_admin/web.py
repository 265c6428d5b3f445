"""Request-level wiring: login, CSRF, proxy headers, template helpers."""
import time
from typing import NamedTuple

from flask import Flask, current_app, request, session
from sqlalchemy import bindparam, select
from werkzeug.middleware.proxy_fix import ProxyFix

from .extensions import csrf, db, login_manager
from .models import User


def init_app(app: Flask) -> None:
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.user_loader(_load_user)
    if app.config["TRUSTED_HEADER"]:
        login_manager.request_loader(_load_user_from_header)
    if app.config["PROXY_FIX"]:
        hops = int(app.config["PROXY_FIX_HOPS"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_prefix=hops)
    from . import templating

    templating.init_app(app)


def _load_user(user_id: str) -> User | None:
    """The user of the session, unless the trusted header names someone else: the proxy's
    word wins, so a browser shared behind the proxy never acts as its previous user."""
    user = db.session.get(User, int(user_id))
    email = _header_email(request)
    if user is not None and email and user.email.lower() != email:
        return None  # Flask-Login then asks the request loader, i.e. the header
    return user


def _load_user_from_header(req) -> User | None:
    """Sign in by the e-mail the intranet's reverse proxy puts in the configured header."""
    email = _header_email(req)
    if not email:
        return None
    return db.session.scalar(db.select(User).filter_by(email=email, active=True))


def _header_email(req) -> str:
    header = current_app.config["TRUSTED_HEADER"]
    return req.headers.get(header, "").strip().lower() if header else ""


# The signed-in user as seen a few seconds ago ----------------------------------------------
#
# Only for answers that reveal nothing but "nothing changed" (the badge poll's 204): they may
# pass on the role and active flag read up to RECENT_USER_SECONDS ago, with one small
# statement instead of Flask-Login's ORM load. Everything else loads the user in full.

RECENT_USER_SECONDS = 5.0
_RECENT_USERS_MAX = 1024


class RecentUser(NamedTuple):
    role: str
    active: bool
    email: str
    expires: float


_recent_user_statement = select(User.role, User.active, User.email).where(User.id == bindparam("id"))


def recent_session_user() -> RecentUser | None:
    """The session's user, as read at most RECENT_USER_SECONDS ago; None whenever Flask-Login
    would do more than load that user (no user id in the session, session protection that
    would act, a trusted header naming someone else) or the user is gone or inactive."""
    user_id = session.get("_user_id")
    if user_id is None or not str(user_id).isdigit() or not _session_identity_holds():
        return None
    recent = current_app.extensions.setdefault("recent_users", {})
    user = recent.get(int(user_id))
    if user is None or user.expires < time.monotonic():
        row = db.session.connection().execute(_recent_user_statement, {"id": int(user_id)}).first()
        if row is None:
            return None
        if len(recent) >= _RECENT_USERS_MAX:
            recent.clear()
        user = recent[int(user_id)] = RecentUser(
            row.role, bool(row.active), row.email.lower(), time.monotonic() + RECENT_USER_SECONDS)
    email = _header_email(request)
    if not user.active or (email and email != user.email):
        return None
    return user


def _session_identity_holds() -> bool:
    """True unless Flask-Login's session protection would act on this request."""
    mode = current_app.config.get("SESSION_PROTECTION", login_manager.session_protection)
    if mode not in ("basic", "strong"):
        return True
    return session.get("_id") == login_manager._session_identifier_generator()
