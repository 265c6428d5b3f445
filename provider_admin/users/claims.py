"""The claims page: what the identity provider said about a user at their last sign-in, and
what IdP sync's mapping made of it."""
import json

from flask import abort, current_app, render_template

from ..extensions import db
from ..models import User
from ..oidc import mapping
from . import bp


@bp.get("/<int:user_id>/claims")
def claims(user_id: int):
    """A user's last claims from the identity provider and what the mapping made of them."""
    user = db.session.get(User, user_id) or abort(404)
    settings = current_app.extensions.get("oidc")
    today = mapping.outcome(user.idp_claims, settings).as_dict() if settings and user.idp_claims else None
    return render_template(
        "users/claims.html", user=user, settings=settings, outcome=user.idp_outcome,
        changed=bool(today and user.idp_outcome and _decisions(today) != _decisions(user.idp_outcome)),
        claims_json=json.dumps(user.idp_claims, indent=2, sort_keys=True, ensure_ascii=False) if user.idp_claims else None)


def _decisions(outcome: dict) -> tuple:
    return outcome.get("role"), sorted(outcome.get("organizations") or {})
