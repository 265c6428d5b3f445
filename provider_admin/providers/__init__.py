from flask import Blueprint

from ..auth.roles import require_roles
from ..models import Role

bp = Blueprint("providers", __name__, url_prefix="/manage/providers")
require_roles(bp, Role.ADMIN.value, Role.MANAGER.value)

from . import cluster, poll, preview, rows, views  # noqa: E402,F401
