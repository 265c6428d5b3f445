"""Every API request signs in by its bearer token, alone: a session cookie sent along is not
read (web.SessionInterface opens none under /api/), so a browser's session can never reach an
API route without CSRF, and a token never becomes a session."""
from flask import g, request

from ..tokens import service
from . import bp, ratelimit
from .document import PUBLIC
from ..problems import problem

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
        user, token = service.authenticate(credentials, request.method, request.remote_addr)
    except service.Refusal as refusal:
        challenge = CHALLENGE + ('' if refusal.status == 403 else ', error="invalid_token"')
        return problem(refusal.status, refusal.title, refusal.detail, headers={"WWW-Authenticate": challenge})
    g._login_user = user  # Flask-Login's current_user for this request only
    g.api_token = token
    return None
