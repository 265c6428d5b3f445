"""Break-glass: a one-time sign-in link for a site admin, made on the command line, for when
the identity provider is down or password sign-in is off. Only its SHA-256 is stored; it
works once, for a few minutes, and both its making and its use are in the audit log."""
import hashlib
import secrets
from datetime import timedelta

from flask import redirect, render_template, request, url_for

from .. import audit, sessions
from ..extensions import db
from ..models import Role, User, utcnow
from . import bp

MAX_MINUTES = 60
USED_OR_EXPIRED = "This break-glass link is not valid: it was used already, has expired or was replaced."


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def issue(user: User, minutes: int, actor) -> str:
    """A new link's secret for the admin (replacing any earlier one); the caller commits."""
    token = secrets.token_urlsafe(32)
    user.break_glass_hash, user.break_glass_expires_at = _digest(token), utcnow() + timedelta(minutes=minutes)
    audit.record("auth.break_glass_issued", user, {"valid_minutes": minutes}, actor=actor)
    return token


def redeem(token: str) -> User | None:
    """The admin whose link this is, when it is still valid; the link is used up either way."""
    user = db.session.scalar(db.select(User).filter_by(break_glass_hash=_digest(token)))
    if user is None:
        return None
    valid = user.break_glass_expires_at > utcnow() and user.active and user.role == Role.ADMIN.value
    user.break_glass_hash = user.break_glass_expires_at = None
    if valid:
        audit.record("auth.sign_in", user, {"address": request.remote_addr, "method": "break-glass link"},
                     actor=user, target_type="sign_in")
    return user if valid else None


@bp.route("/login/break-glass/<token>", methods=["GET", "POST"])
def break_glass(token: str):
    """Sign in with a break-glass link: a button first, so that a link preview never uses it."""
    if request.method == "GET":
        return render_template("auth/break_glass.html", token=token)
    user = redeem(token)
    db.session.commit()
    if user is None:
        return render_template("error.html", code=403, message=USED_OR_EXPIRED), 403
    sessions.start(user)
    return redirect(url_for("users.index"), code=303)
