"""Request-level wiring: login, CSRF, proxy headers, template helpers."""
from flask import Flask, current_app, request
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

