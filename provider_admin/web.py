"""Request-level wiring: bounds on what a request may carry, login, sessions, CSRF, proxy headers,
security headers, template helpers."""
import ipaddress
import logging

from flask import Flask, current_app, has_request_context, request, session
from flask.sessions import SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter, ValidationError

from . import framing, sessions
from .problems import is_api_request, problem
from .errors import error_response
from .extensions import csrf, db, login_manager
from .forms import text_problem
from .models import User

log = logging.getLogger(__name__)


class SessionInterface(SecureCookieSessionInterface):
    """Signed cookie sessions whose cookie is Secure whenever the page was served over https,
    directly or behind a proxy that says so (PROXY_FIX), unless configured either way, and
    whose path is the site's URL prefix behind a proxy that gives one."""

    def get_cookie_secure(self, app: Flask) -> bool:
        setting = app.config["SESSION_COOKIE_SECURE"]
        if setting is None or setting == "auto":
            return has_request_context() and request.is_secure
        return bool(setting)

    def get_cookie_path(self, app: Flask) -> str:
        # Under a URL prefix (X-Forwarded-Prefix), the cookie stays under it: another app on the
        # same intranet host neither receives it nor overwrites it with a cookie of the same name.
        configured = app.config["SESSION_COOKIE_PATH"]
        if configured or not has_request_context():
            return configured or app.config["APPLICATION_ROOT"]
        return request.script_root or app.config["APPLICATION_ROOT"]

    def open_session(self, app: Flask, request):
        # The API signs in by token alone: a cookie sent along is not even read.
        if is_api_request():
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session, response) -> None:
        if not is_api_request():
            super().save_session(app, session, response)


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
    app.before_request(_refuse_token_outside_api)
    csrf.init_app(app)
    app.session_interface = SessionInterface()
    sessions.cookie_attributes(app, framing.by_other_origins(framing.parse(app.config["FRAME_ANCESTORS"])))
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.user_loader(_load_user)
    app.extensions["trusted_proxies"] = networks(app.config["TRUSTED_PROXIES"])
    if app.config["TRUSTED_HEADER"]:
        login_manager.request_loader(_load_user_from_header)
        if not app.extensions["trusted_proxies"]:
            log.warning("PROVIDER_ADMIN_TRUSTED_HEADER is set but PROVIDER_ADMIN_TRUSTED_PROXIES is empty: "
                        "the header is ignored until the proxy's addresses are listed.")
    if app.config["PROXY_FIX"]:
        hops = int(app.config["PROXY_FIX_HOPS"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_prefix=hops)
    from . import branding, conflicts, headers, templating

    branding.init_app(app)
    conflicts.init_app(app)
    headers.init_app(app)
    templating.init_app(app)


def networks(setting, name: str = "PROVIDER_ADMIN_TRUSTED_PROXIES") -> list:
    """Addresses or networks (TRUSTED_PROXIES, METRICS_ALLOW), as a list or separated by
    commas or spaces."""
    items = setting if isinstance(setting, (list, tuple)) else str(setting or "").replace(",", " ").split()
    try:
        return [ipaddress.ip_network(str(item).strip(), strict=False) for item in items if str(item).strip()]
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from None


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
            if is_api_request():
                return problem(422, "Invalid request", "A query parameter holds control characters or "
                                                      "invalid Unicode.", errors=[{"pointer": f"#/query/{key}",
                                                                                   "detail": "Not acceptable text."}])
            return error_response(400, "The address holds characters that no page takes, "
                                       "such as control characters.")
    return None


def _refuse_token_outside_api():
    """A personal access token opens the API only: sent to a page it is refused, never taken
    for a session (nor silently ignored, which would hide a script's wrong address)."""
    if request.headers.get("Authorization", "").lower().startswith("bearer ") and not is_api_request() \
            and request.endpoint != "metrics.metrics":  # which takes its own token, METRICS_TOKEN
        return error_response(401, "API tokens are accepted under /api/v1/ only; sign in to use the pages.")
    return None


def _load_user(user_id: str) -> User | None:
    """The user of the session while the session holds (not ended, not idle or too old), unless
    the trusted header names someone else: the proxy's word wins, so a browser shared behind
    the proxy never acts as its previous user."""
    user = db.session.get(User, int(user_id)) if str(user_id).isdigit() else None
    if user is None or not sessions.holds(user.session_version):
        session.clear()
        return None
    email = trusted_header_email(request)
    if email and user.email.lower() != email:
        return None  # Flask-Login then asks the request loader, i.e. the header
    return user


def _load_user_from_header(req) -> User | None:
    """Sign in by the e-mail the intranet's reverse proxy puts in the configured header."""
    email = trusted_header_email(req)
    if not email:
        return None
    return db.session.scalar(db.select(User).filter_by(email=email, active=True))


def trusted_header_email(req) -> str:
    """The trusted header's e-mail, when the request came straight from a trusted proxy."""
    header = current_app.config["TRUSTED_HEADER"]
    if not header or not _from_trusted_proxy(req):
        return ""
    return req.headers.get(header, "").strip().lower()


def _from_trusted_proxy(req) -> bool:
    """Whether the connecting socket (not X-Forwarded-For, which a client can write) is a
    trusted proxy's."""
    environ = req.environ
    peer = environ.get("werkzeug.proxy_fix.orig", {}).get("REMOTE_ADDR", environ.get("REMOTE_ADDR"))
    try:
        address = ipaddress.ip_address(str(peer or "").split("%")[0])
    except ValueError:
        return False
    if getattr(address, "ipv4_mapped", None):
        address = address.ipv4_mapped
    return any(address in network for network in current_app.extensions["trusted_proxies"])
