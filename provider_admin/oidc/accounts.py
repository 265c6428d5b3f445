"""Who a single sign-on is: the account matched by the provider's identity or verified email
(created when allowed), then IdP sync re-applied: the mapped role and organizations."""
import json
import logging
import re
from dataclasses import dataclass

import sqlalchemy as sa

from .. import audit
from ..extensions import db
from ..models import Organization, Role, User, organization_members, utcnow
from ..users import admins
from . import mapping
from .settings import Settings

# Claims about the token rather than the person: not kept.
TOKEN_CLAIMS = {"nonce", "at_hash", "c_hash", "exp", "iat", "nbf", "auth_time", "jti"}
CLAIMS_KEPT_BYTES = 64 * 1024
IDP = "idp"
log = logging.getLogger(__name__)


@dataclass
class Refused(Exception):
    """A sign-in the app refuses, with the page that says why."""

    reason: str  # for the audit log
    title: str
    message: str
    status: int = 403


def _verified(value) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def email_of(claims: dict, settings: Settings) -> str:
    email = str(claims.get("email") or "").strip().lower()
    if not email or "@" not in email or len(email) > 254:
        raise Refused("email_missing", "No email address from the identity provider",
                      "The identity provider did not send an email address, which is how accounts are "
                      "matched here. Ask its administrator to release the email claim (scope email).")
    if not settings.allow_unverified_email and not _verified(claims.get("email_verified")):
        raise Refused("email_unverified", "Email address not verified",
                      f"The identity provider says that {email} is not verified. Verify it there, then sign in again.")
    return email


def find_or_create(claims: dict, settings: Settings) -> User:
    """The account of these claims: by the provider's identity, else by verified email."""
    email, subject = email_of(claims, settings), str(claims.get("sub") or "")
    if not subject or len(subject) > 255:
        raise Refused("subject", "The identity provider's answer did not check out",
                      "It named no usable subject (sub) for the user.", 400)
    user = db.session.scalar(db.select(User).filter_by(oidc_issuer=settings.issuer, oidc_subject=subject))
    if user is None:
        user = db.session.scalar(db.select(User).filter(sa.func.lower(User.email) == email))
        if user is not None and user.oidc_subject and (user.oidc_issuer, user.oidc_subject) != (settings.issuer, subject):
            raise Refused("identity_mismatch", "Account linked to another identity",
                          f"The account {email} here is linked to another identity at the provider. "
                          "Ask a site admin to check it.")
    if user is None:
        if not settings.allow_signup:
            raise Refused("no_account", "No account here yet",
                          f"There is no account for {email}. Ask a site admin to create one, then sign in again.")
        user = User(email=email, username=_free_username(claims, email), role=settings.default_role)
        db.session.add(user)
        db.session.flush()
        audit.record("user.create", user, {"role": user.role, "via": "single sign-on"}, actor=user)
    if not user.active:
        raise Refused("deactivated", "Account deactivated",
                      f"The account {email} is deactivated here. Ask a site admin to reactivate it.")
    user.oidc_issuer, user.oidc_subject = settings.issuer, subject
    _follow_email(user, email)
    return user


def _follow_email(user: User, email: str) -> None:
    """An address changed at the provider follows to the account linked to its identity,
    unless another account here has it (then both stay as they are, for an admin to sort out)."""
    if user.email == email:
        return
    taken = db.session.scalar(db.select(User.id).filter(sa.func.lower(User.email) == email, User.id != user.id))
    if taken is None:
        audit.record("user.idp_sync", user, {"email": {"from": user.email, "to": email}},
                     actor="(identity provider)")
        user.email = email
    else:
        log.warning("Single sign-on of %s: the provider now says %s, which another account has; kept the old address",
                    user.email, email)


def _free_username(claims: dict, email: str) -> str:
    """The provider's preferred username, else the email's local part, made to fit the rules."""
    wanted = str(claims.get("preferred_username") or email.split("@")[0]).lower()
    base = re.sub(r"[^a-z0-9_.-]+", "-", wanted.split("@")[0]).strip("._-")[:56] or "user"
    name, n = base, 1
    while db.session.scalar(db.select(User.id).filter_by(username=name)) is not None:
        n += 1
        name = f"{base}-{n}"
    return name


def sync(user: User, claims: dict, settings: Settings) -> dict:
    """Apply the mapping to the user; returns the changes (also in the audit log)."""
    result = mapping.outcome(claims, settings)
    changes = {}
    if settings.syncs_role:
        changes.update(_apply_role(user, result))
    user.idp_managed = settings.syncs_role
    if settings.syncs_organizations:
        changes.update(_apply_organizations(user, result))
    user.idp_claims, user.idp_outcome, user.idp_synced_at = _kept(claims), result.as_dict(), utcnow()
    if changes:
        audit.record("user.idp_sync", user, changes, actor="(identity provider)")
    return changes


def _apply_role(user: User, result: mapping.Outcome) -> dict:
    before = user.role
    if result.role == before:
        return {}
    admins.lock()
    user.role = result.role
    if before == Role.ADMIN.value and admins.none_left():  # the site keeps an active Site admin
        user.role = before
        result.notes.append(f"Kept {before}: the site needs an active Site admin, and this is the last one.")
        return {}
    return {"role": {"from": before, "to": user.role}}


def _apply_organizations(user: User, result: mapping.Outcome) -> dict:
    """Sync adds and removes only the memberships it made; those given by hand stay."""
    db.session.flush()
    wanted = {}
    for name in result.organizations:
        org = db.session.scalar(db.select(Organization).filter(sa.func.lower(Organization.name) == name.lower()))
        if org is None:
            result.notes.append(f"No organization named {name} here: create it to have the mapping apply.")
        else:
            wanted[org.id] = org.name
    members = organization_members.c
    rows = db.session.execute(sa.select(members.organization_id, members.source).where(members.user_id == user.id)).all()
    have = {row.organization_id: row.source for row in rows}
    added = [org_id for org_id in wanted if org_id not in have]
    removed = [org_id for org_id, source in have.items() if source == IDP and org_id not in wanted]
    if added:
        db.session.execute(organization_members.insert(),
                           [{"organization_id": org_id, "user_id": user.id, "source": IDP} for org_id in added])
    if removed:
        db.session.execute(organization_members.delete().where(
            members.user_id == user.id, members.organization_id.in_(removed)))
    db.session.expire(user, ["organizations"])
    names = dict(db.session.execute(sa.select(Organization.id, Organization.name).where(
        Organization.id.in_(added + removed))).all())
    changes = {}
    if added:
        changes["organizations_added"] = sorted(names[i] for i in added)
    if removed:
        changes["organizations_removed"] = sorted(names[i] for i in removed)
    return changes


def _kept(claims: dict) -> dict:
    kept = {k: v for k, v in claims.items() if k not in TOKEN_CLAIMS}
    if len(json.dumps(kept, default=str)) > CLAIMS_KEPT_BYTES:
        return {"sub": claims.get("sub"), "email": claims.get("email"),
                "(not kept)": f"the claims were larger than {CLAIMS_KEPT_BYTES // 1024} KiB"}
    return json.loads(json.dumps(kept, default=str))
