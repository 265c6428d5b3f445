"""What every area of the API shares: its blueprint (tagged, token-secured, readable operation
ids, and the roles it admits) and the If-Match precondition of changes."""
from flask import Response, abort, request
from flask_openapi3 import APIBlueprint, Tag

from ..models import Role
from ..problems import problem
from .auth import caller_role

MANAGERS = (Role.ADMIN.value, Role.MANAGER.value)


def area(name: str, tag: Tag, *, prefix: str = "", roles: tuple[str, ...] | None = None) -> APIBlueprint:
    """A blueprint of the API; with `roles`, its every route answers 403 to other roles (the
    role the token's owner has now)."""
    bp = APIBlueprint(name, __name__, url_prefix=prefix or None, abp_tags=[tag], abp_security=[{"token": []}],
                      operation_id_callback=lambda *, bp_name="", name="", path="", method="": name)
    if roles is not None:
        @bp.before_request
        def _check_role():
            if caller_role() not in roles:
                abort(403)
    return bp


def precondition(current: str, *, required: bool = True, what: str = "it") -> Response | None:
    """If-Match against the ETag `current`: 428 when required and missing, 412 when it changed
    since the caller's read; None when the change may go ahead."""
    given = request.headers.get("If-Match")
    if given is None:
        return problem(428, "Precondition required", "Send If-Match with the ETag of your last read, "
                            "so that a change made meanwhile is not overwritten.") if required else None
    if given.strip() != "*" and current not in [tag.strip() for tag in given.split(",")]:
        return problem(412, "Changed meanwhile", f"{what[:1].upper() + what[1:]} changed since your read; "
                            "read it again.", headers={"ETag": current})
    return None
