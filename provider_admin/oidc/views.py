import logging

import requests
from authlib.integrations.base_client.errors import MismatchingStateError, OAuthError
from authlib.common.errors import AuthlibBaseError
from flask import abort, current_app, redirect, render_template, request, session, url_for
from joserfc.errors import JoseError
from sqlalchemy.exc import IntegrityError

from .. import audit, sessions
from ..auth.views import _safe_next
from ..extensions import db
from . import accounts, bp, client, settings
from .accounts import Refused

log = logging.getLogger(__name__)
# In the session: how it was signed in (sign-out then ends the provider's session too), and
# where to go after signing in.
VIA, NEXT = "_via", "_oidc_next"
EXCERPT = 200


@bp.get("/login")
def login():
    """Send the browser to the identity provider (code flow with PKCE, state and nonce).

    A link, not a form: the Content-Security-Policy's `form-action 'self'` stops a form whose
    answer redirects to another origin. Starting a sign-in changes only this visitor's own
    session, and the state checked at the callback refuses an answer for any other."""
    settings() or abort(404)
    try:
        _check_discovery()
        response = client().authorize_redirect(url_for(".callback", _external=True))
    except Refused as refused:
        return _refused(refused)
    session[NEXT] = _safe_next(request.args.get("next"))
    return response


@bp.get("/callback")
def callback():
    """Where the identity provider sends the browser back: sign in, or a page that says why not."""
    found = settings() or abort(404)
    claims = {}
    try:
        claims = _claims()
        user = accounts.find_or_create(claims, found)
        accounts.sync(user, claims, found)
        audit.record("auth.sign_in", user, {"address": request.remote_addr, "method": "single sign-on"},
                     actor=user, target_type="sign_in")
        db.session.commit()
    except Refused as refused:
        return _refused(refused, claims)
    except IntegrityError:  # the same new account, signing in twice at once
        return _refused(Refused("conflict", "Signed in twice at once",
                                "Another sign-in of this account was being saved. Start again.", 409), claims)
    target = session.get(NEXT) or url_for("auth.home")
    # A new session, started after the commit: it carries the session version that a role
    # change by the sync just bumped, so it holds while the user's other sessions end.
    sessions.start(user)
    session[VIA] = "oidc"
    return redirect(target, code=303)


def end_session_url() -> str | None:
    """Where sign-out continues when this session came from the identity provider and its
    discovery document offers an end-session endpoint (read before the session ends)."""
    if settings() is None or session.get(VIA) != "oidc":
        return None
    try:
        if not client().load_server_metadata().get("end_session_endpoint"):
            return None
        return client().create_logout_url(post_logout_redirect_uri=url_for("auth.login", _external=True),
                                          client_id=settings().client_id)["url"]
    except (requests.RequestException, ValueError, AuthlibBaseError) as error:
        log.warning("Signed out here only: the identity provider's discovery failed (%s)", error)
        return None


def _check_discovery() -> None:
    """Read the provider's discovery document (once; Authlib keeps it) and check it is the
    configured issuer's."""
    try:
        metadata = client().load_server_metadata()
    except (requests.RequestException, ValueError) as error:
        raise _unreachable(error) from None
    issuer = str(metadata.get("issuer", "")).rstrip("/")
    if issuer != settings().issuer or not metadata.get("authorization_endpoint"):
        client().server_metadata.clear()  # read again next time, once the provider is fixed
        raise Refused("discovery", "The identity provider is not set up as expected",
                      f"Its discovery document names the issuer {issuer[:EXCERPT]!r}, not {settings().issuer!r}. "
                      "A site admin should check PROVIDER_ADMIN_OIDC_ISSUER.", 502)


def _unreachable(error) -> Refused:
    return Refused("unreachable", "The identity provider did not answer",
                   f"{settings().issuer} could not be reached ({type(error).__name__}). Try again in a moment; "
                   "if it stays down, a site admin can still get in with the break-glass command.", 502)


def _claims() -> dict:
    """The verified claims of the ID token, completed by the userinfo endpoint."""
    error = request.args.get("error")
    if error == "access_denied":
        raise Refused("denied", "Sign-in cancelled",
                      "The identity provider did not sign you in: consent was denied or the sign-in cancelled.")
    if error:
        raise Refused("provider_error", "The identity provider refused the sign-in",
                      f"It answered: {error[:EXCERPT]} {request.args.get('error_description', '')[:EXCERPT]}", 400)
    _check_discovery()
    try:
        token = client().authorize_access_token()
        claims = dict(token.get("userinfo") or {})
        if not claims:
            raise Refused("id_token", "The identity provider's answer did not check out",
                          "It sent no ID token.", 400)
        return claims | _userinfo(token, claims["sub"])
    except MismatchingStateError:
        raise Refused("state", "This sign-in has expired or was not started here",
                      "The answer from the identity provider does not belong to a sign-in started in this "
                      "browser (it was used already, or is someone else's). Start again.", 400) from None
    except requests.RequestException as error:
        raise _unreachable(error) from None
    except JoseError as error:
        raise Refused("id_token", "The identity provider's answer did not check out",
                      f"Its ID token was not valid for this sign-in ({type(error).__name__}: "
                      f"{str(error)[:EXCERPT]}). Start again.", 400) from None
    except (OAuthError, AuthlibBaseError) as error:
        raise Refused("provider_error", "The identity provider refused the sign-in",
                      f"It answered: {str(error)[:EXCERPT]}. Start again.", 400) from None


def _userinfo(token: dict, subject: str) -> dict:
    """What the userinfo endpoint adds (groups often come only from there); ignored unless it
    speaks of the same subject."""
    if not client().load_server_metadata().get("userinfo_endpoint"):
        return {}
    info = dict(client().userinfo(token=token))
    return {k: v for k, v in info.items() if k != "sub"} if info.get("sub") == subject else {}


def _refused(refused: Refused, claims: dict | None = None):
    db.session.rollback()
    claims = claims or {}
    audit.record("auth.sign_in_failed", _Target(claims.get("email") or claims.get("sub") or ""),
                 {"method": "single sign-on", "reason": refused.reason, "address": request.remote_addr},
                 actor=f"(not signed in) {request.remote_addr or ''}".strip(), target_type="sign_in")
    db.session.commit()
    log.info("Single sign-on refused: %s", refused.reason)
    return render_template("oidc/failed.html", refused=refused,
                           password_sign_in=current_app.config["PASSWORD_SIGN_IN"]), refused.status


class _Target:
    id = None

    def __init__(self, name: str):
        self.name = str(name)[:254]
