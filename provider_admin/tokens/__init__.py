"""Personal access tokens: the "API tokens" page where people create and revoke the bearer
tokens that scripts use on /api/v1/, and the rules that turn a token into its owner."""
from flask import Blueprint

from ..auth.roles import require_login

bp = Blueprint("tokens", __name__, url_prefix="/tokens")
require_login(bp)

from . import views  # noqa: E402,F401
