"""The organizations area (/manage/organizations): organizations and their members."""
from flask import Blueprint

from ..auth.roles import require_roles
from ..models import Role

bp = Blueprint("organizations", __name__, url_prefix="/manage/organizations")
require_roles(bp, Role.ADMIN.value, Role.MANAGER.value)

from . import views  # noqa: E402,F401
