from flask import abort
from flask_login import current_user
from flask_openapi3 import Tag

from ..extensions import db
from ..tokens import service
from ..tokens.views import get_token_or_404
from ..tokens.models import ApiToken
from . import bp
from .auth import current_token
from .schemas import Me, OrganizationRef, Token, TokenList, TokenPath, TokenQuery

TOKENS = Tag(name="Tokens", description="Personal access tokens (created on the API tokens page).")


def _token(token: ApiToken) -> Token:
    return Token(id=token.id, name=token.name, owner=token.user.email, hint=token.hint,
                 read_only=token.read_only, state=token.state(), created_at=token.created_at,
                 expires_at=token.expires_at, last_used_at=token.last_used_at, revoked_at=token.revoked_at)


@bp.get("/me", responses={200: Me}, tags=[TOKENS])
def me():
    """Who the token acts as

    The owner with the role they have now (a token never has more), and the token itself.
    """
    return Me(id=current_user.id, email=current_user.email, username=current_user.username,
              role=current_user.role, token=_token(current_token()),
              organizations=[OrganizationRef(id=o.id, name=o.name) for o in current_user.organizations]
              ).model_dump(mode="json")


@bp.get("/tokens", responses={200: TokenList}, tags=[TOKENS])
def tokens(query: TokenQuery):
    """List tokens

    The caller's own tokens, never their secrets; with `owner=all`, everyone's (site admins).
    """
    everyone = query.owner == "all"
    if everyone and not current_user.is_admin:
        abort(403)
    items = db.session.scalars(service.visible_to(current_user, everyone))
    return TokenList(items=[_token(t) for t in items]).model_dump(mode="json")


@bp.delete("/tokens/<int:token_id>", responses={204: None}, tags=[TOKENS])
def revoke_token(path: TokenPath):
    """Revoke a token

    One's own, or any for site admins; it is refused from the next request on. Tokens are
    created on the API tokens page only, so that a token can never mint a stronger one.
    """
    token = get_token_or_404(path.token_id)
    service.revoke(token, current_user)
    return "", 204
