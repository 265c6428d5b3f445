"""The workspaces area (/workspaces): members create, watch and delete their own workspaces.

`views` (the routes), `forms`, `eligibility` (the providers an organization may use) and
`builds` (building and tearing down in the background).
"""
from flask import Blueprint

from ..auth.roles import require_login

bp = Blueprint("workspaces", __name__, url_prefix="/workspaces")
require_login(bp)

from . import views  # noqa: E402,F401
