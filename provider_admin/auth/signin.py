"""Password sign-in: throttled, audited, and as slow for an unknown account as for a known one."""
import functools
import random
from dataclasses import dataclass
from types import SimpleNamespace

from werkzeug.security import check_password_hash, generate_password_hash

from .. import audit
from ..extensions import db
from ..models import User
from . import throttle

WRONG = "Wrong email or password, or the account is deactivated."
# Counts older than the throttle's window are removed on about one sign-in in this many.
CLEANUP_ONE_IN = 50


@dataclass(frozen=True)
class Attempt:
    user: User | None
    error: str | None = None
    status: int = 200


@functools.cache
def _dummy_hash() -> str:
    """A hash made with the current default method, checked when the account does not exist,
    so that the answer takes as long as for a real account."""
    return generate_password_hash("not a password of anyone")


def attempt(email: str, password: str, address: str | None) -> Attempt:
    """Check the password unless a lock holds; record and audit the outcome (the caller commits)."""
    email = email.strip().lower()
    keys = throttle.Keys.of(email, address)
    wait = throttle.locked_for(keys)
    if wait:
        return Attempt(None, too_many(wait), 429)
    user = db.session.scalar(db.select(User).filter_by(email=email))
    valid = check_password_hash(user.password_hash if user and user.password_hash else _dummy_hash(), password)
    if user is None or not user.password_hash or not valid or not user.active:
        started_lock = throttle.record_failure(keys)
        _audit("auth.sign_in_failed", user, email, address)
        if started_lock:
            _audit("auth.sign_in_throttled", user, email, address)
        if random.randrange(CLEANUP_ONE_IN) == 0:
            throttle.forget_expired()
        return Attempt(None, WRONG, 422)
    throttle.record_success(keys)
    audit.record("auth.sign_in", user, {"address": address}, actor=user, target_type="sign_in")
    return Attempt(user)


def too_many(seconds: int) -> str:
    wait = f"{seconds} seconds" if seconds < 120 else f"{(seconds + 59) // 60} minutes"
    return f"Too many failed sign-ins. Try again in {wait}."


def _audit(action: str, user: User | None, email: str, address: str | None) -> None:
    target = user or SimpleNamespace(id=None, name=email)
    audit.record(action, target, {"email": email, "address": address},
                 actor=f"(not signed in) {address or ''}".strip(), target_type="sign_in")
