"""Notifications (/manage/notifications, site admins): where messages about providers and
tokens go, the outbox the scheduler delivers, and the delivery log."""
from flask import Blueprint

from ..auth.roles import require_roles
from ..models import Role

bp = Blueprint("notifications", __name__, url_prefix="/manage/notifications")
require_roles(bp, Role.ADMIN.value)

from . import views  # noqa: E402,F401
