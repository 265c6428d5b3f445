"""What is told, and when. Every event is enqueued in the transaction of the change that
causes it (a check's result, a cordon), with one delivery per target: committed together,
so that nothing is lost or told twice.

A flapping provider does not flood: its first status change goes out at once; the changes
within NOTIFY_FLAP_WINDOW of a message are held in one event, which goes out when the window
ends and says how often the status changed and what it is now.
"""
from datetime import timedelta
from typing import NamedTuple

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import NotificationDelivery, NotificationEvent, NotificationTarget, Provider, Status, utcnow
from ..tokens.models import ApiToken

events = NotificationEvent.__table__
STATUS = "provider.status"
# A held event is merged into only while it is due later than this: a scheduler about to
# send it has not read it yet.
HOLD_MARGIN = timedelta(seconds=2)


def enqueue(kind: str, subject: str, text: str, data: dict, *, provider_id: int | None = None,
            deliver_after=None, dedup_key: str | None = None, target: NotificationTarget | None = None,
            claimed_by: str | None = None) -> NotificationEvent:
    """Add an event and its deliveries to the current transaction; the caller commits. A
    test goes to `target` alone, once, claimed already by `claimed_by`, who sends it now."""
    now = utcnow()
    event = NotificationEvent(kind=kind, subject=subject[:300], text=text, data=data,
                              provider_id=provider_id, dedup_key=dedup_key, created_at=now,
                              deliver_after=deliver_after or now)
    # Nothing flushed here: the caller's commit writes it all, and meets its own errors
    # (such as a stale version of the provider) where it expects them.
    with db.session.no_autoflush:
        targets = [target.id] if target else db.session.scalars(select(NotificationTarget.id)).all()
    attempts = 1 if target else int(current_app.config["NOTIFY_MAX_ATTEMPTS"])
    db.session.add(event)
    lease = timedelta(seconds=float(current_app.config["NOTIFY_LEASE"]))
    db.session.add_all(NotificationDelivery(event=event, target_id=target_id, max_attempts=attempts,
                                            next_attempt_at=event.deliver_after, is_test=bool(target),
                                            claimed_by=claimed_by, claimed_until=claimed_by and now + lease)
                       for target_id in targets)
    return event


# Provider status --------------------------------------------------------------------------

def worth_telling(old: str, new: str) -> bool:
    """Into Error (the failure threshold is behind it already), or from Error back to Ready."""
    error, ready = Status.ERROR.value, Status.READY.value
    return (new == error and old != error) or (new == ready and old == error)


class StatusChange(NamedTuple):
    provider_id: int
    old: str
    new: str
    generation: int  # the check generation the result was computed for


def status_changes(changes: list[StatusChange]) -> None:
    """After the results' UPDATE, in its transaction: each change is told when it is worth
    telling and it applied (the provider is still at its generation, with that status)."""
    wanted = [change for change in changes if worth_telling(change.old, change.new)]
    if not wanted:
        return
    rows = {row.id: row for row in db.session.execute(
        select(Provider.id, Provider.name, Provider.status, Provider.status_message,
               Provider.check_generation).where(Provider.id.in_([c.provider_id for c in wanted])))}
    for change in wanted:
        row = rows.get(change.provider_id)
        if row is not None and row.status == change.new and row.check_generation == change.generation:
            provider_status(row.id, row.name, change.old, change.new, row.status_message)


def provider_status(provider_id: int, name: str, old: str, new: str, message: str | None) -> None:
    now = utcnow()
    window = timedelta(seconds=float(current_app.config["NOTIFY_FLAP_WINDOW"]))
    last = db.session.execute(
        select(events.c.id, events.c.changes, events.c.deliver_after, events.c.data)
        .where(events.c.kind == STATUS, events.c.provider_id == provider_id)
        .order_by(events.c.id.desc()).limit(1)).first()
    if last is not None and last.deliver_after > now + HOLD_MARGIN:
        changes = last.changes + 1
        subject, text, data = _status_words(name, provider_id, last.data["previous"], new, message,
                                            changes, window)
        merged = db.session.execute(
            update(events).where(events.c.id == last.id, events.c.deliver_after > now + HOLD_MARGIN)
            .values(changes=changes, subject=subject, text=text, data=data))
        if merged.rowcount == 1:
            return
    held_until = last.deliver_after + window if last is not None and last.deliver_after > now - window else now
    subject, text, data = _status_words(name, provider_id, old, new, message, 1, window)
    enqueue(STATUS, subject, text, data, provider_id=provider_id, deliver_after=max(held_until, now))


def _status_words(name, provider_id, previous, new, message, changes, window):
    label = Status(new).label
    now_is = f"{label}: {message}" if new == Status.ERROR.value and message else label
    if changes > 1:
        subject = f"{name} changed status {changes} times in {_span(window)}; now {label}"
        text = f"{name} changed status {changes} times in {_span(window)}; now {now_is}"
    elif new == Status.ERROR.value:
        subject, text = f"{name} is down (Error)", f"{name} is now {now_is}"
    else:
        subject = text = f"{name} is Ready again"
    data = {"provider": {"id": provider_id, "name": name, "status": new, "message": message},
            "previous": previous, "changes": changes}
    return subject, text, data


def _span(window: timedelta) -> str:
    seconds = round(window.total_seconds())
    number, unit = (seconds // 60, "minute") if seconds >= 120 else (seconds, "second")
    return f"{number} {unit}{'s' if number != 1 else ''}"


# Cordon -----------------------------------------------------------------------------------

def cordon_changed(provider: Provider, actor) -> None:
    """Cordoned or uncordoned, in the transaction of the change itself."""
    who = getattr(actor, "email", None) or str(actor)
    if provider.cordoned:
        kind, subject = "provider.cordon", f"{provider.name} is cordoned"
        text = f"{subject} by {who}: {provider.cordon_reason} (no new workspaces start there)"
    else:
        kind, subject = "provider.uncordon", f"{provider.name} is uncordoned"
        text = f"{subject} by {who}: new workspaces may start there again"
    enqueue(kind, subject, text, {"provider": {"id": provider.id, "name": provider.name},
                                  "by": who, "reason": provider.cordon_reason}, provider_id=provider.id)


# Tokens nearing expiry (found by the scheduler, told once per token) ----------------------

def expiring_tokens() -> int:
    """Enqueue, once each, the tokens that expire within NOTIFY_TOKEN_EXPIRY_DAYS: the
    providers' cluster tokens and the API tokens. Commits; returns how many were new."""
    now = utcnow()
    soon = now + timedelta(days=float(current_app.config["NOTIFY_TOKEN_EXPIRY_DAYS"]))
    found = []
    for provider in db.session.execute(select(Provider.id, Provider.name, Provider.token_expires_at).where(
            Provider.token_expires_at > now, Provider.token_expires_at <= soon)):
        at = provider.token_expires_at
        found.append((f"provider-token:{provider.id}:{at:%Y%m%dT%H%M%S}", provider.id,
                      f"The cluster token of {provider.name} expires on {at:%Y-%m-%d %H:%M} UTC",
                      {"provider": {"id": provider.id, "name": provider.name}, "expires_at": at.isoformat()}))
    for token in db.session.scalars(select(ApiToken).where(
            ApiToken.revoked_at.is_(None), ApiToken.expires_at > now, ApiToken.expires_at <= soon)):
        at = token.expires_at
        found.append((f"api-token:{token.id}", None,
                      f"The API token \"{token.name}\" of {token.user.email} expires on {at:%Y-%m-%d %H:%M} UTC",
                      {"token": {"id": token.id, "name": token.name, "owner": token.user.email},
                       "expires_at": at.isoformat()}))
    known = set(db.session.scalars(select(events.c.dedup_key).where(
        events.c.dedup_key.in_([key for key, *_ in found])))) if found else set()
    added = 0
    for key, provider_id, text, data in found:
        if key in known:
            continue
        try:
            with db.session.begin_nested():  # another scheduler may be adding it right now
                enqueue("token.expiry", text, text + ": renew it before then.", data,
                        provider_id=provider_id, dedup_key=key)
            added += 1
        except IntegrityError:
            pass
    db.session.commit()
    return added
