from flask import Response, request
from flask_login import current_user

from ..htmx import is_fragment_request, render
from ..providers.fingerprint import status_fingerprint
from ..providers.queries import provider_page
from ..providers.scope import Scope
from . import bp

# The poll of the signed-out prompt sends this instead of a fingerprint.
SIGNED_OUT = "signed-out"


@bp.get("/providers")
def index():
    """The providers' status, compact and read-only; a poll with the current fingerprint gets 204."""
    if not current_user.is_authenticated:
        return _signed_out()
    scope = visible_scope(current_user)
    if is_fragment_request() and request.args.get("fp") == status_fingerprint(scope):
        return _unchanged()
    return render("embed/providers.html", "embed/_providers.html",
                  listing=provider_page(scope), large=_large())


def visible_scope(user) -> Scope:
    """What the providers page shows a manager (all of them), or a member's organizations' providers."""
    return Scope() if user.can_manage else Scope(member=user.id)


def _signed_out():
    """The prompt to sign in (401), which polls until a session turns up; a list whose session
    ended is replaced by the prompt rather than left showing old badges."""
    if is_fragment_request() and request.args.get("fp") == SIGNED_OUT:
        return _unchanged()
    status = 200 if is_fragment_request() else 401
    return render("embed/providers.html", "embed/_sign_in.html", status, large=_large(), signed_out=SIGNED_OUT)


def _large() -> bool:
    """?size=large: type for a wall screen read from across the room."""
    return request.args.get("size") == "large"


def _unchanged() -> Response:
    response = Response(status=204)
    response.vary.add("HX-Request")
    return response
