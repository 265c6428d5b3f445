"""Adding, removing and testing notification targets; the views come here."""
import os
import secrets
import socket

from .. import audit, crypto
from ..extensions import db
from ..models import NotificationDelivery, NotificationTarget, TargetKind
from . import channels, events, outbox

RECENT = 10  # deliveries shown per target


def create(form, actor) -> tuple[NotificationTarget, str | None]:
    """A new target, committed, and the signing secret of a JSON webhook (shown once)."""
    kind = form.kind.data
    secret = "whsec_" + secrets.token_urlsafe(32) if kind == TargetKind.WEBHOOK.value else None
    target = NotificationTarget(name=form.name.data, kind=kind, recipients=form.recipients.data or None)
    if kind != TargetKind.EMAIL.value:
        target.url_encrypted = crypto.encrypt(form.url.data)
        target.url_origin = channels.origin(form.url.data)
        target.secret_encrypted = crypto.encrypt(secret)
    db.session.add(target)
    db.session.flush()
    audit.record("notification_target.create", target, {"kind": kind, "destination": target.destination},
                 actor=actor, target_type="notification_target")
    db.session.commit()
    return target, secret


def delete(target: NotificationTarget, actor) -> None:
    audit.record("notification_target.delete", target, {"kind": target.kind, "destination": target.destination},
                 actor=actor, target_type="notification_target")
    db.session.delete(target)
    db.session.commit()


def send_test(target: NotificationTarget, actor) -> NotificationDelivery:
    """Send a test message to this target now, through the outbox (it shows in the log)."""
    text = f"A test message from Provider Admin, sent by {actor.email}: this target works."
    worker = f"{socket.gethostname()}:{os.getpid()}:web"  # claimed from the start: no scheduler takes it
    event = events.enqueue("test", f"Test message for {target.name}", text,
                           {"target": {"id": target.id, "name": target.name}}, target=target, claimed_by=worker)
    audit.record("notification_target.test", target, actor=actor, target_type="notification_target")
    db.session.commit()
    delivery_id = db.session.scalars(db.select(NotificationDelivery.id).filter_by(event_id=event.id)).one()
    outbox.deliver(delivery_id, worker)
    return db.session.get(NotificationDelivery, delivery_id)


def recent_deliveries(targets: list[NotificationTarget]) -> dict[int, list[NotificationDelivery]]:
    """The newest deliveries of each target, with their events, in one query per target."""
    return {target.id: db.session.scalars(
        db.select(NotificationDelivery).filter_by(target_id=target.id)
        .options(db.joinedload(NotificationDelivery.event))
        .order_by(NotificationDelivery.id.desc()).limit(RECENT)).all() for target in targets}
