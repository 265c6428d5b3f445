"""The audit log: every change to a provider, organization or user, who made it and when."""
from flask import Blueprint
from flask_login import current_user

from ..extensions import db
from ..models import AuditEvent, Role

bp = Blueprint("audit", __name__, url_prefix="/manage/audit")

SECRET_FIELDS = {"token", "credentials", "password", "client_key", "kubeconfig"}
REDACTED = "(redacted)"


def redact(changes: dict | None) -> dict | None:
    """Replace secret values by a marker that still says that they changed."""
    if not changes:
        return changes
    return {k: (REDACTED if k in SECRET_FIELDS else v) for k, v in changes.items()}


def record(action: str, target, changes: dict | None = None, *, actor=None,
           target_type: str | None = None) -> None:
    """Add an audit event to the current transaction; it commits with the change itself.
    `actor` is a user (the signed-in one by default) or, for the app's own changes, a name;
    `target_type` defaults to the target's class (sign-ins name their own)."""
    actor = actor or current_user
    actor_id, actor_name = (None, actor) if isinstance(actor, str) else (actor.id, actor.email)
    db.session.add(
        AuditEvent(
            actor_id=actor_id,
            actor=actor_name,
            action=action,
            target_type=target_type or type(target).__name__.lower(),
            target_id=target.id,
            target_name=getattr(target, "name", None) or getattr(target, "email", ""),
            changes=redact(changes),
        )
    )


from ..auth.roles import require_roles  # noqa: E402

require_roles(bp, Role.ADMIN.value, Role.MANAGER.value)

from . import views  # noqa: E402,F401
