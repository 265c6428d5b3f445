from flask import abort, g, jsonify, request
from flask_login import current_user

from ..extensions import db
from ..tokens import service
from ..tokens.models import ApiToken
from . import bp


def _token_json(token: ApiToken) -> dict:
    stamp = lambda value: value and value.isoformat(timespec="seconds")  # noqa: E731
    return {"id": token.id, "name": token.name, "owner": token.user.email, "hint": token.hint,
            "read_only": token.read_only, "state": token.state(), "created_at": stamp(token.created_at),
            "expires_at": stamp(token.expires_at), "last_used_at": stamp(token.last_used_at),
            "revoked_at": stamp(token.revoked_at)}


@bp.get("/me")
def me():
    """Who the token acts as, with the role it has now, and the token's own scope and expiry."""
    token = g.api_token
    return jsonify({
        "id": current_user.id, "email": current_user.email, "username": current_user.username,
        "role": current_user.role,
        "organizations": [{"id": o.id, "name": o.name} for o in current_user.organizations],
        "token": _token_json(token),
    })


@bp.get("/tokens")
def tokens():
    """The caller's tokens (never their secrets); `?owner=all` lists everyone's, for site admins."""
    everyone = request.args.get("owner") == "all"
    if everyone and not current_user.is_admin:
        abort(403)
    return jsonify({"items": [_token_json(t) for t in db.session.scalars(service.visible_to(current_user, everyone))]})


@bp.delete("/tokens/<int:token_id>")
def revoke_token(token_id: int):
    """Revoke a token (one's own; any, for site admins). Tokens are created on the API tokens
    page only, so that a token can never mint a stronger one."""
    token = db.session.get(ApiToken, token_id)
    if token is None or not (current_user.is_admin or token.user_id == current_user.id):
        abort(404)
    service.revoke(token, current_user)
    return "", 204
