"""Request-level wiring: bounds on what a request may carry, login, CSRF, proxy headers,
template helpers."""
import time
from typing import NamedTuple

from flask import Flask, current_app, request, session
from sqlalchemy import bindparam, select
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter, ValidationError

from .errors import error_response
from .extensions import csrf, db, login_manager
from .forms import text_problem
from .models import User

# The largest id a table holds: the primary keys are `integer` columns (32-bit on PostgreSQL).
MAX_ID = 2**31 - 1


class IdConverter(IntegerConverter):
    """`<int:...>` in every route: ASCII digits from 1 to MAX_ID; anything else is a 404
    before the view runs, never an overflow in the database."""

    regex = r"[0-9]+"

    def __init__(self, map, fixed_digits=0, min=1, max=MAX_ID, signed=False):
        super().__init__(map, fixed_digits, min, max, signed)

    def to_python(self, value: str) -> int:
        if len(value.lstrip("0")) > len(str(MAX_ID)):  # out of range, and too long for int()
            raise ValidationError()
        return super().to_python(value)


def arg_int(args, name: str, default: int | None = None) -> int | None:
    """A whole number from the query string: `default` when missing, not a number or below 1,
    at most MAX_ID (a page past the end is empty, an id past it is missing)."""
    value = str(args.get(name, ""))
    if not (value.isascii() and value.isdigit()):
        return default
    digits = value.lstrip("0")
    if len(digits) > len(str(MAX_ID)):
        return MAX_ID
    return min(int(digits), MAX_ID) if digits else default


def init_app(app: Flask) -> None:
    app.url_map.converters["int"] = IdConverter
    # Before anything reads the body (CSRF, sign-in), and before the query string reaches a view.
    app.before_request(_refuse_large_body)
    app.before_request(_refuse_odd_query)
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


def _refuse_large_body():
    """A body over MAX_BODY_BYTES is answered 413: unread when its length is declared; sent
    without one (chunked), read up to the limit, where the next byte is refused, so that no
    form is ever parsed from a body cut short."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if limit is None:
        return None
    if (request.content_length or 0) > limit:
        return error_response(413)
    if request.content_length is None and request.method not in ("GET", "HEAD", "OPTIONS"):
        request.get_data(cache=True)  # kept for the form parser
        request.stream.read(1)  # past the limit, Werkzeug raises RequestEntityTooLarge
    return None


def _refuse_odd_query():
    """A query string is typed or built by the app: it never holds control characters or
    invalid Unicode, nor a value longer than a form field may be."""
    limit = int(current_app.config["MAX_FORM_FIELD_BYTES"])
    for key, value in request.args.items(multi=True):
        if text_problem(key, multiline=False, limit=limit) or text_problem(value, multiline=False, limit=limit):
            return error_response(400, "The address holds characters that no page takes, "
                                       "such as control characters.")
    return None


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
