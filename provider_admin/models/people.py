"""Users, their sign-in throttles, and organizations."""
from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    Boolean,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from ..extensions import db
from .base import Role, UTCDateTime, organization_members, utcnow


class User(UserMixin, db.Model):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("oidc_issuer", "oidc_subject", name="uq_users_oidc_identity"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=Role.MEMBER.value)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Every session carries the value it was started with; bumping it ends them all
    # (sign-out, a password or role change, deactivation).
    session_version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    # Single sign-on: the identity at the provider, and what it said at the last sign-in
    # (its claims, never its tokens, and what the mapping made of them).
    oidc_issuer: Mapped[str | None] = mapped_column(String(255))
    oidc_subject: Mapped[str | None] = mapped_column(String(255))
    idp_managed: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)  # role set by sync
    idp_claims: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))
    idp_outcome: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))
    idp_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A one-time sign-in link from the command line (its SHA-256, never the link itself).
    break_glass_hash: Mapped[str | None] = mapped_column(String(64))
    break_glass_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    organizations: Mapped[list[Organization]] = relationship(
        secondary=organization_members, back_populates="members", order_by="Organization.name"
    )

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return self.active

    @property
    def role_label(self) -> str:
        return Role(self.role).label

    @property
    def can_manage(self) -> bool:
        return self.role in (Role.ADMIN.value, Role.MANAGER.value)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN.value

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return bool(self.password_hash) and check_password_hash(self.password_hash, password)


class SignInThrottle(db.Model):
    """Failed sign-ins counted per account or client address, shared by every web process."""

    __tablename__ = "sign_in_throttles"

    key: Mapped[str] = mapped_column(String(320), primary_key=True)  # "account:<email>" | "address:<ip>"
    failures: Mapped[int] = mapped_column(Integer, nullable=False)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)


class Organization(db.Model):
    __tablename__ = "organizations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    members: Mapped[list[User]] = relationship(
        secondary=organization_members, back_populates="organizations", order_by="User.username"
    )
