from flask import Blueprint

from ..auth.roles import require_login

bp = Blueprint("workspaces", __name__, url_prefix="/workspaces")
require_login(bp)

from . import views  # noqa: E402,F401
