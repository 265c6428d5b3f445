"""OpenID Connect single sign-on (authorization code flow with PKCE, state and nonce) and
IdP sync, on when PROVIDER_ADMIN_OIDC_ISSUER is set."""
import logging

from authlib.integrations.flask_client import OAuth
from flask import Blueprint, Flask, current_app

from . import settings as oidc_settings

bp = Blueprint("oidc", __name__, url_prefix="/oidc")
log = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    """Check the settings (a mistake stops the start, naming the setting) and register the
    provider's client; its discovery document is read at the first sign-in, so the app starts
    while the provider is down."""
    found = oidc_settings.load(app.config)
    app.extensions["oidc"] = found
    if not app.config["PASSWORD_SIGN_IN"] and found is None and not app.config["TRUSTED_HEADER"]:
        log.warning("PROVIDER_ADMIN_PASSWORD_SIGN_IN is false and neither single sign-on nor the trusted "
                    "header is configured: only `flask --app app users break-glass` lets anyone in.")
    if found is None:
        return
    oauth = OAuth(app)
    oauth.register(
        "oidc", client_id=found.client_id, client_secret=found.client_secret,
        server_metadata_url=f"{found.issuer}/.well-known/openid-configuration",
        client_kwargs={"scope": found.scopes, "code_challenge_method": "S256", "default_timeout": found.timeout},
    )
    app.extensions["oidc_client"] = oauth.oidc


def settings():
    """The single sign-on settings of the running app, or None when it is off."""
    return current_app.extensions.get("oidc")


def client():
    return current_app.extensions["oidc_client"]


from . import views  # noqa: E402,F401
