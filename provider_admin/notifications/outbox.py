"""The outbox: deliveries claimed like checks (a lease in the row), sent, and recorded.

A claim is one `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING id` that
repeats the due condition, so two schedulers never take the same delivery (see
`checks.claims`). No transaction stays open while a message is on its way; the outcome is
written only while the claim is still the writer's. A scheduler that dies between sending
and writing leaves a claim that expires: that one message is sent again (receivers can tell
by its delivery id). A scheduler that stops hands back its claims (see `Courier.stop`).

When the database goes away while a message is on its way, the message is not sent again:
its outcome is written again every RECORD_RETRY_SECONDS until the database answers, as long
as the claim lasts. The write is guarded by the claim, which it releases, so a write whose
commit was made but whose answer was lost changes nothing the second time.

A failed attempt is retried after NOTIFY_RETRY_BASE seconds, twice as long after each
further one (at most NOTIFY_RETRY_MAX), until NOTIFY_MAX_ATTEMPTS; then it is failed.
"""
import logging
import os
import socket
import threading
import time
from datetime import timedelta

from flask import Flask, current_app
from sqlalchemy import and_, delete, or_, select, update

from .. import crypto
from ..database import describe, is_unreachable, rollback_quietly
from ..extensions import db
from ..kube.connection import BLOCKED_NETWORKS
from ..models import DeliveryStatus, NotificationDelivery, NotificationEvent, NotificationTarget, TargetKind, utcnow
from . import channels, events

log = logging.getLogger(__name__)
deliveries = NotificationDelivery.__table__
BATCH = 20  # deliveries sent per tick, claimed one by one: each within its own lease
KEEP_DAYS = 30  # the delivery log's memory
TOKEN_SCAN_SECONDS = 60
RECORD_RETRY_SECONDS = 1.0  # while the database is away, between two writes of an outcome
LEASE_MARGIN = 0.1  # of the lease: an outcome is not written again this close to the lease's end


def claim_due(worker: str, limit: int, lease: float) -> list[int]:
    now = utcnow()
    due = and_(deliveries.c.status == DeliveryStatus.PENDING.value, deliveries.c.next_attempt_at <= now)
    free = or_(deliveries.c.claimed_until.is_(None), deliveries.c.claimed_until < now)
    oldest_first = (
        select(deliveries.c.id).where(due, free)
        .order_by(deliveries.c.next_attempt_at, deliveries.c.id).limit(limit)
        .with_for_update(skip_locked=True)
        .cte("oldest_first").prefix_with("MATERIALIZED")
    )
    ids = db.session.scalars(
        update(deliveries).where(deliveries.c.id.in_(select(oldest_first.c.id)), due, free)
        .values(claimed_by=worker, claimed_until=now + timedelta(seconds=lease))
        .returning(deliveries.c.id)).all()
    db.session.commit()
    return sorted(ids)


def deliver(delivery_id: int, worker: str, writable_until: float = 0.0) -> bool:
    """Send one claimed delivery and write the outcome; whether it was delivered. While the
    database is away, the outcome is written again until `writable_until` (time.monotonic())."""
    config = current_app.config
    delivery = db.session.get(NotificationDelivery, delivery_id)
    event, target = delivery.event, delivery.target
    message = channels.Message(delivery.id, event.kind, event.subject, event.text, event.data,
                               event.created_at.isoformat(timespec="seconds"), delivery.is_test)
    send = _sender(target, config)
    db.session.rollback()  # no transaction open while the message travels
    code, error = None, None
    try:
        code = send(message)
    except channels.SendError as failure:
        code, error = failure.code, str(failure)
    except Exception as failure:  # a bug must not keep the claim going round
        log.exception("delivery %s failed", delivery_id)
        error = f"Could not send: {type(failure).__name__}"
    while True:
        try:
            _record(delivery_id, worker, code, error)
            return error is None
        except Exception as failure:
            rollback_quietly()
            if not is_unreachable(failure) or time.monotonic() + RECORD_RETRY_SECONDS >= writable_until:
                raise
            log.warning("could not write the outcome of delivery %s, the database is not reachable (%s); "
                        "trying again", delivery_id, describe(failure))
        time.sleep(RECORD_RETRY_SECONDS)


def _sender(target: NotificationTarget, config):
    timeout = float(config["NOTIFY_TIMEOUT"])
    blocked = () if config["ALLOW_LINK_LOCAL_CLUSTERS"] else BLOCKED_NETWORKS
    if target.kind == TargetKind.EMAIL.value:
        recipients = [r.strip() for r in (target.recipients or "").split(",") if r.strip()]
        return lambda message: channels.send_email(recipients, message, config)
    url = crypto.decrypt(target.url_encrypted)
    if target.kind == TargetKind.TEXT.value:
        return lambda message: channels.send_text(url, message, timeout=timeout, blocked=blocked)
    secret = crypto.decrypt(target.secret_encrypted)
    return lambda message: channels.send_webhook(url, secret, message, timeout=timeout, blocked=blocked)


def _record(delivery_id: int, worker: str, code: int | None, error: str | None) -> None:
    config = current_app.config
    now = utcnow()
    row = db.session.execute(select(deliveries.c.attempts, deliveries.c.max_attempts)
                             .where(deliveries.c.id == delivery_id)).first()
    if row is None:  # its target was deleted meanwhile
        db.session.rollback()
        return
    attempts = row.attempts + 1
    values = {"attempts": attempts, "last_attempt_at": now, "response_code": code, "last_error": error,
              "claimed_by": None, "claimed_until": None}
    if error is None:
        values.update(status=DeliveryStatus.DELIVERED.value, delivered_at=now)
    elif attempts >= row.max_attempts:
        values.update(status=DeliveryStatus.FAILED.value)
    else:
        wait = min(float(config["NOTIFY_RETRY_BASE"]) * 2 ** (attempts - 1), float(config["NOTIFY_RETRY_MAX"]))
        values.update(next_attempt_at=now + timedelta(seconds=wait))
    db.session.execute(update(deliveries).where(deliveries.c.id == delivery_id,
                                                deliveries.c.claimed_by == worker).values(values))
    db.session.commit()


def hand_back(worker: str) -> int:
    """Release the claims `worker` holds, for another scheduler to send at once; how many."""
    released = db.session.execute(update(deliveries).where(deliveries.c.claimed_by == worker)
                                  .values(claimed_by=None, claimed_until=None)).rowcount
    db.session.commit()
    return released


def prune() -> None:
    """Forget events (and their deliveries) older than KEEP_DAYS that are settled."""
    before = utcnow() - timedelta(days=KEEP_DAYS)
    pending = select(deliveries.c.event_id).where(deliveries.c.status == DeliveryStatus.PENDING.value)
    db.session.execute(delete(NotificationEvent).where(NotificationEvent.created_at < before,
                                                       NotificationEvent.id.not_in(pending)))
    db.session.commit()


class Courier:
    """The scheduler's notification job: each tick, the due deliveries; each minute, the tokens."""

    def __init__(self, app: Flask, worker: str | None = None):
        self.app = app
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}:notify"
        self._next_scan = 0.0
        self.closed = False
        self._busy = threading.Lock()  # held by the tick under way

    def tick(self) -> int:
        """Deliver what is due; returns how many were delivered."""
        if self.closed or not self._busy.acquire(blocking=False):
            return 0
        try:
            return self._deliver_due()
        finally:
            self._busy.release()

    def _deliver_due(self) -> int:
        delivered = 0
        with self.app.app_context():
            try:
                if time.monotonic() >= self._next_scan:
                    self._next_scan = time.monotonic() + TOKEN_SCAN_SECONDS
                    events.expiring_tokens()
                    prune()
                lease = float(self.app.config["NOTIFY_LEASE"])
                for _ in range(BATCH):
                    if self.closed:
                        break
                    writable_until = time.monotonic() + lease * (1 - LEASE_MARGIN)  # before the claim
                    claimed = claim_due(self.worker, 1, lease)
                    if not claimed:
                        break
                    delivered += deliver(claimed[0], self.worker, writable_until)
            except Exception as error:  # the claims expire, the deliveries come back
                if not is_unreachable(error):
                    log.exception("could not deliver notifications")
                else:
                    log.warning("could not deliver notifications: the database is not reachable (%s)",
                                describe(error))
            finally:
                db.session.remove()
        return delivered

    @property
    def busy(self) -> bool:
        """Whether a tick is under way."""
        return self._busy.locked()

    def stop(self, grace: float | None = None) -> int:
        """Claim nothing more, let the delivery under way finish for at most `grace` seconds
        (None: as long as it takes), then hand back this courier's claims; returns how many.
        A message handed back while on its way may arrive twice, with the same delivery id."""
        self.closed = True
        if self._busy.acquire(timeout=-1 if grace is None else grace):
            self._busy.release()
        with self.app.app_context():
            try:
                return hand_back(self.worker)
            except Exception:
                log.exception("could not hand back the deliveries of %s", self.worker)
                db.session.rollback()
                return 0
            finally:
                db.session.remove()
