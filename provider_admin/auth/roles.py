"""Role checks, applied to whole blueprints so that no route can forget them."""
from urllib.parse import urlsplit

from flask import abort, current_app, flash, g, make_response, request
from flask_login import current_user, login_url

from ..extensions import login_manager
from ..htmx import is_fragment_request
from .recent import recent_session_user


def require_roles(bp, *roles: str) -> None:
    """Every route of the blueprint needs a signed-in user with one of the roles. A view marked
    `recent_role_will_do` may run on the role seen a few seconds ago, and calls
    `confirm_roles()` before it answers anything but "nothing changed"."""

    @bp.before_request
    def _check_role():
        view = current_app.view_functions.get(request.endpoint)
        if getattr(view, "recent_role_will_do", False):
            user = recent_session_user()
            if user is not None and user.role in roles:
                g.unconfirmed_roles = roles
                return None
        return _check(roles)


def recent_role_will_do(view):
    """Mark a view whose quick answer reveals only that nothing changed."""
    view.recent_role_will_do = True
    return view


def confirm_roles():
    """The full check (Flask-Login's user, its role) for a view that passed on a recent role;
    its answer, when not None, is the view's answer."""
    roles = g.pop("unconfirmed_roles", None)
    return None if roles is None else _check(roles)


def _check(roles):
    if not current_user.is_authenticated:
        return sign_in_first()
    if current_user.role not in roles:
        abort(403)


def require_login(bp) -> None:
    @bp.before_request
    def _check_login():
        if not current_user.is_authenticated:
            return sign_in_first()


def sign_in_first():
    """Send an anonymous visitor to sign in; HTMX loads the sign-in page instead of swapping it in."""
    if not is_fragment_request():
        return login_manager.unauthorized()
    # Come back to the page the fragment was on, not to the fragment's own URL.
    page = urlsplit(request.headers.get("HX-Current-URL", ""))
    flash(login_manager.login_message, login_manager.login_message_category)
    back = page.path + (f"?{page.query}" if page.query else "")
    response = make_response("", 401, {"HX-Redirect": login_url(login_manager.login_view, next_url=back or None)})
    response.vary.add("HX-Request")
    return response
