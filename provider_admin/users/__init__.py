"""The users area (/manage/users): accounts and roles, always with one active site admin left."""
from flask import Blueprint

from ..auth.roles import require_roles
from ..models import Role

bp = Blueprint("users", __name__, url_prefix="/manage/users")
require_roles(bp, Role.ADMIN.value)

from . import claims, views  # noqa: E402,F401
