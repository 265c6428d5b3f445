"""Creating, revoking and using personal access tokens; the views and the API both come here."""
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import bindparam, select, update

from .. import audit
from ..extensions import db
from ..models import User, utcnow
from . import secrets
from .models import ApiToken

# How often "last used" is written back: a script polling every second costs one write a minute.
LAST_USED_RESOLUTION = timedelta(seconds=60)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def create(user: User, name: str, days: int, read_only: bool) -> tuple[ApiToken, str]:
    """A new token for `user`, committed, and its secret (to be shown once)."""
    secret = secrets.generate()
    token = ApiToken(user=user, name=name, secret_hash=secrets.digest(secret), hint=secrets.hint(secret),
                     read_only=read_only, expires_at=utcnow() + timedelta(days=days))
    db.session.add(token)
    db.session.flush()
    audit.record("api_token.create", token, {"owner": user.email, "scope": token.scope_label,
                                             "expires_at": token.expires_at.isoformat(timespec="minutes")},
                 actor=user, target_type="api_token")
    db.session.commit()
    return token, secret


def revoke(token: ApiToken, by: User) -> None:
    """Revoke a token now (its owner, or an admin); revoking twice changes nothing, even at
    the same moment: the write is conditional, and the second one finds it done."""
    if token.revoked_at is not None:
        return
    revoked = db.session.execute(update(ApiToken).where(ApiToken.id == token.id, ApiToken.revoked_at.is_(None))
                                 .values(revoked_at=utcnow(), revoked_by=by.email))
    if revoked.rowcount == 1:
        audit.record("api_token.revoke", token, {"owner": token.user.email}, actor=by, target_type="api_token")
    db.session.commit()


def visible_to(user: User, everyone: bool = False):
    """The statement for the tokens a page lists: the user's own, or (admins) everyone's."""
    query = db.select(ApiToken).order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    return query if everyone and user.is_admin else query.filter(ApiToken.user_id == user.id)


@dataclass(frozen=True)
class Refusal(Exception):
    """Why a request's token does not sign anyone in (an HTTP status and the words for it)."""

    status: int
    title: str
    detail: str


class Bearer(NamedTuple):
    """A token that signs a request in, and its owner's role and state, as one statement read
    them at the start of the request. Views that need more load the ORM objects by id."""

    token_id: int
    user_id: int
    role: str
    active: bool
    name: str
    read_only: bool
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    last_used_address: str | None


# The token and its owner in one small statement, no ORM objects: this runs on every API request,
# and revoking, deactivating or demoting shows from the next request on, whichever process wrote it.
_BEARER = select(ApiToken.id.label("token_id"), ApiToken.user_id, User.role, User.active, ApiToken.name,
                 ApiToken.read_only, ApiToken.expires_at, ApiToken.revoked_at, ApiToken.last_used_at,
                 ApiToken.last_used_address).join(User, User.id == ApiToken.user_id) \
    .where(ApiToken.secret_hash == bindparam("secret_hash"))


def authenticate(raw: str, method: str, address: str | None, now: datetime | None = None) -> Bearer:
    """The token and its owner, as the database says now (role, active), or a Refusal. A token
    never grants more than its owner's role at the time of use; a read-only one takes reads only."""
    now = now or utcnow()
    row = db.session.connection().execute(_BEARER, {"secret_hash": secrets.digest(raw)}).first() \
        if secrets.well_formed(raw) else None
    if row is None:
        raise Refusal(401, "Invalid token", "The bearer token is not a token of this site.")
    token = Bearer(**row._mapping)
    if token.revoked_at is not None:
        raise Refusal(401, "Token revoked", f"The token \"{token.name}\" was revoked.")
    if token.expires_at <= now:
        raise Refusal(401, "Token expired", f"The token \"{token.name}\" expired on "
                                            f"{token.expires_at:%Y-%m-%d %H:%M} UTC.")
    if not token.active:
        raise Refusal(401, "Account deactivated", "The token's owner is deactivated.")
    if token.read_only and method not in SAFE_METHODS:
        raise Refusal(403, "Read-only token", "The token is read-only; create a read-and-write token "
                                              "to make changes.")
    _mark_used(token, address, now)
    return token


def _mark_used(token: Bearer, address: str | None, now: datetime) -> None:
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_RESOLUTION \
            and token.last_used_address == address:
        return
    db.session.execute(update(ApiToken).where(ApiToken.id == token.token_id)
                       .values(last_used_at=now, last_used_address=(address or "")[:45] or None))
    db.session.commit()
