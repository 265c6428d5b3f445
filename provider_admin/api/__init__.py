"""The JSON API under /api/v1/: bearer tokens instead of sessions, problem+json errors."""
from flask import Blueprint

from ..extensions import csrf
from ..problems import PREFIX

bp = Blueprint("api", __name__, url_prefix=PREFIX)
# A token is sent by a script, never attached by a browser on its own: no cookie, no CSRF.
csrf.exempt(bp)

from . import auth, views  # noqa: E402,F401
from .ratelimit import init_app  # noqa: E402,F401
