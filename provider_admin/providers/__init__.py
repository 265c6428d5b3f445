"""The providers area (/manage/providers): register, edit, check, cordon, deploy and delete clusters.

`views` and `cluster` (the routes), `forms` and `scheduling` (the provider form and its four
JSON fields), `service` (form to model, guards, audit), `queries` and `rows` (the list),
`preview`, `bootstrap` and `builtin` (what a provider's settings do in its cluster).
"""
from flask import Blueprint

from ..auth.roles import require_roles
from ..models import Role

bp = Blueprint("providers", __name__, url_prefix="/manage/providers")
require_roles(bp, Role.ADMIN.value, Role.MANAGER.value)

from . import cluster, pictures, poll, preview, rows, views  # noqa: E402,F401
