"""Sign-in throttling per account and per client address, kept in the database so that every
web process (and every gunicorn worker) counts the same failures.

Each key ("account:<email>", "address:<ip>") counts failures in a window. Past its limit,
every further failure locks the key for twice as long as the last, up to SIGN_IN_LOCKOUT
seconds; while locked, sign-in is refused before the password is even looked at. A success
clears the account's count, never the address's (one's own account must not reset the count
of guesses at others').
"""
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import case, delete, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ..extensions import db
from ..models import SignInThrottle, utcnow

WINDOW = timedelta(minutes=15)
FIRST_LOCK_SECONDS = 30

table = SignInThrottle.__table__


@dataclass(frozen=True)
class Keys:
    account: str
    address: str

    @classmethod
    def of(cls, email: str, address: str | None) -> "Keys":
        return cls(f"account:{email.strip().lower()}"[:320], f"address:{address or 'unknown'}"[:320])

    def limits(self) -> dict[str, int]:
        config = current_app.config
        return {self.account: int(config["SIGN_IN_MAX_FAILURES"]),
                self.address: int(config["SIGN_IN_MAX_FAILURES_PER_ADDRESS"])}


def locked_for(keys: Keys) -> int:
    """Seconds until sign-in may be tried again for these keys (0: not locked)."""
    now = utcnow()
    until = db.session.scalar(select(func.max(SignInThrottle.locked_until))
                              .where(SignInThrottle.key.in_([keys.account, keys.address]),
                                     SignInThrottle.locked_until > now))
    return max(1, int((until - now).total_seconds() + 0.999)) if until else 0


def record_failure(keys: Keys) -> bool:
    """Count a failed sign-in for both keys; True when it started a lock on either."""
    now = utcnow()
    locked = False
    for key, limit in keys.limits().items():
        failures = _count(key, now)
        if failures >= limit:
            seconds = min(FIRST_LOCK_SECONDS * 2 ** (failures - limit), int(current_app.config["SIGN_IN_LOCKOUT"]))
            db.session.execute(update(table).where(table.c.key == key)
                               .values(locked_until=now + timedelta(seconds=seconds)))
            locked = True
    return locked


def record_success(keys: Keys) -> None:
    db.session.execute(delete(table).where(table.c.key == keys.account))


def _count(key: str, now: datetime) -> int:
    """Add one failure to the key in one statement (an upsert: safe under concurrent workers);
    a window that ended without a lock starts again."""
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stale = (table.c.window_started_at < now - WINDOW) & (
        table.c.locked_until.is_(None) | (table.c.locked_until < now))
    statement = insert(table).values(key=key, failures=1, window_started_at=now)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.key],
        set_={"failures": case((stale, 1), else_=table.c.failures + 1),
              "window_started_at": case((stale, literal(now, table.c.window_started_at.type)),
                                                 else_=table.c.window_started_at)},
    ).returning(table.c.failures)
    return db.session.execute(statement).scalar_one()


def forget_expired() -> None:
    """Drop the counts nobody needs any more (called now and then by sign-in)."""
    now = utcnow()
    db.session.execute(delete(table).where(table.c.window_started_at < now - WINDOW,
                                           table.c.locked_until.is_(None) | (table.c.locked_until < now)))
