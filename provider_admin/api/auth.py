"""Every API request signs in by its bearer token, alone: a session cookie sent along is not
read (web.SessionInterface opens none under /api/), so a browser's session can never reach an
API route without CSRF, and a token never becomes a session.

The check is one small statement (tokens.service.authenticate), made on every request, so a
revoked token, a deactivated owner or a new role counts from the next request on, in every
process. The owner's ORM object (Flask-Login's current_user) and the token's are loaded only by
the views that use more than the role."""
from flask import abort, g, request
from werkzeug.local import LocalProxy

from ..extensions import db
from ..models import User
from ..problems import problem
from ..tokens import service
from ..tokens.models import ApiToken
from . import bp, ratelimit
from .document import PUBLIC

CHALLENGE = 'Bearer realm="Provider Admin API"'


@bp.before_request
def _authenticate():
    if request.endpoint in PUBLIC:
        return ratelimit.check(f"address:{request.remote_addr}")
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    credentials = credentials.strip()
    refused = ratelimit.check(f"token:{service.secrets.digest(credentials)}" if service.secrets.well_formed(credentials)
                              else f"address:{request.remote_addr}")
    if refused is not None:
        return refused
    if scheme.lower() != "bearer" or not credentials:
        return problem(401, "Authentication required",
                       "Send a personal access token: Authorization: Bearer <token>.",
                       headers={"WWW-Authenticate": CHALLENGE})
    try:
        g.api_bearer = service.authenticate(credentials, request.method, request.remote_addr)
    except service.Refusal as refusal:
        challenge = CHALLENGE + ('' if refusal.status == 403 else ', error="invalid_token"')
        return problem(refusal.status, refusal.title, refusal.detail, headers={"WWW-Authenticate": challenge})
    g._login_user = LocalProxy(_owner)  # Flask-Login's current_user for this request only
    return None


def caller_role() -> str:
    """The role of the token's owner, as read at the start of this request."""
    return g.api_bearer.role


def _owner() -> User:
    if "api_owner" not in g:
        g.api_owner = db.session.get(User, g.api_bearer.user_id)
        if g.api_owner is None:  # deleted since the token was checked
            abort(401)
    return g.api_owner


def current_token() -> ApiToken:
    """The token of this request, as an ORM object."""
    token = db.session.get(ApiToken, g.api_bearer.token_id)
    if token is None:
        abort(401)
    return token
