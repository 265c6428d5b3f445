"""Notifications: where they go (targets), what happened (events) and the outbox of
deliveries, one per event and target, that the scheduler works through."""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import UTCDateTime, utcnow


class TargetKind(str, enum.Enum):
    WEBHOOK = "webhook"  # JSON, signed with HMAC-SHA256
    TEXT = "text"  # {"text": ...}: Slack, Mattermost and Teams incoming webhooks
    EMAIL = "email"  # over the SMTP server of the settings

    @property
    def label(self) -> str:
        return {"webhook": "Signed JSON webhook", "text": "Chat webhook (Slack, Mattermost, Teams)",
                "email": "E-mail"}[self.value]


class DeliveryStatus(str, enum.Enum):
    PENDING = "pending"  # due at next_attempt_at (again, after a failed attempt)
    DELIVERED = "delivered"
    FAILED = "failed"  # gave up after the last attempt

    @property
    def label(self) -> str:
        return self.value.capitalize()


class NotificationTarget(db.Model):
    __tablename__ = "notification_targets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    # A webhook's URL often is a secret itself (chat webhooks carry their token in the path):
    # kept encrypted, and only its origin is ever shown.
    url_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    url_origin: Mapped[str | None] = mapped_column(String(300))
    # The signing secret of a JSON webhook, encrypted; shown once, when it was made.
    secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    recipients: Mapped[str | None] = mapped_column(String(1000))  # e-mail addresses, comma-separated
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    deliveries: Mapped[list[NotificationDelivery]] = relationship(
        back_populates="target", cascade="all, delete-orphan", passive_deletes=True)

    @property
    def kind_label(self) -> str:
        return TargetKind(self.kind).label

    @property
    def destination(self) -> str:
        """What the page may show of where it goes: the URL's origin, or the addresses."""
        return self.recipients if self.kind == TargetKind.EMAIL.value else f"{self.url_origin}/…"


class NotificationEvent(db.Model):
    """Something to tell people. A provider's status changes within the flap window are
    merged into one event while it is held (deliver_after in the future)."""

    __tablename__ = "notification_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)  # provider.status, provider.cordon, ...
    provider_id: Mapped[int | None] = mapped_column(
        ForeignKey("providers.id", ondelete="SET NULL"), index=True)
    subject: Mapped[str] = mapped_column(String(300))
    text: Mapped[str] = mapped_column(Text)
    data: Mapped[dict] = mapped_column(JSON)
    changes: Mapped[int] = mapped_column(Integer, default=1)  # status changes summarised
    # Makes an event that may be found twice (a token's expiry) happen once.
    dedup_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deliver_after: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NotificationDelivery(db.Model):
    """One event to one target: the outbox row the scheduler claims (a lease, like checks)."""

    __tablename__ = "notification_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("notification_events.id", ondelete="CASCADE"), index=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("notification_targets.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    response_code: Mapped[int | None] = mapped_column(Integer)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    is_test: Mapped[bool] = mapped_column(Boolean, default=False)

    event: Mapped[NotificationEvent] = relationship()
    target: Mapped[NotificationTarget] = relationship(back_populates="deliveries")

    @property
    def status_label(self) -> str:
        return DeliveryStatus(self.status).label
