"""Probes for the platform (/healthz, /readyz): unauthenticated, cheap, and saying nothing
secret. Outside sign-in, setup, CSRF and rate limits, and never audited.

`views` (the two routes), `readiness` (the database and migration checks behind /readyz).
"""
from flask import Blueprint, Flask

from ..extensions import csrf

bp = Blueprint("health", __name__)

from . import views  # noqa: E402,F401


def init_app(app: Flask) -> None:
    csrf.exempt(bp)  # GET only; a probe has no session and no token
