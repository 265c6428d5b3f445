"""What every model uses: UTC times, roles and statuses, and the association tables."""
from __future__ import annotations

import enum
import uuid
from datetime import datetime, timezone

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    String,
    Table,
)

from ..extensions import db

def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_uid() -> str:
    return str(uuid.uuid4())


class UTCDateTime(db.TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


class Role(str, enum.Enum):
    ADMIN = "admin"
    MANAGER = "manager"
    MEMBER = "member"

    @property
    def label(self) -> str:
        return {"admin": "Site admin", "manager": "Site manager", "member": "Member"}[self.value]


class Status(str, enum.Enum):
    PENDING = "pending"
    READY = "ready"
    ERROR = "error"

    @property
    def label(self) -> str:
        return self.value.capitalize()


organization_members = Table(
    "organization_members",
    db.metadata,
    Column("organization_id", ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    # "manual", or "idp" for a membership that identity-provider sync made: sync adds and
    # removes only its own, so memberships given by hand stay.
    Column("source", String(8), nullable=False, default="manual", server_default="manual"),
)

provider_organizations = Table(
    "provider_organizations",
    db.metadata,
    Column("provider_id", ForeignKey("providers.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "organization_id", ForeignKey("organizations.id", ondelete="RESTRICT"), primary_key=True
    ),
)
