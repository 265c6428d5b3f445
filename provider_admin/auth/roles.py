"""Role checks, applied to whole blueprints so that no route can forget them."""
from flask import abort
from flask_login import current_user

from ..extensions import login_manager


def require_roles(bp, *roles: str) -> None:
    """Every route of the blueprint needs a signed-in user with one of the roles."""

    @bp.before_request
    def _check_role():
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if current_user.role not in roles:
            abort(403)


def require_login(bp) -> None:
    @bp.before_request
    def _check_login():
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
