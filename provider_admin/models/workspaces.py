"""Workspaces and their build logs."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import UTCDateTime, utcnow
from .people import Organization, User
from .providers import Provider


class Workspace(db.Model):
    __tablename__ = "workspaces"
    __table_args__ = (UniqueConstraint("owner_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), index=True
    )
    provider_id: Mapped[int] = mapped_column(
        ForeignKey("providers.id", ondelete="RESTRICT"), index=True
    )
    image: Mapped[str] = mapped_column(String(512))
    cpu: Mapped[str] = mapped_column(String(16))
    memory: Mapped[str] = mapped_column(String(16))
    disk: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="building")
    status_message: Mapped[str | None] = mapped_column(Text)
    # A deletion asked for while the build ran: the teardown follows when the build ends.
    delete_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # Identity in the cluster, fixed at creation: a uid that is never reused (in a label on
    # every object) and the stem of the object names (both set by workspaces.builds at
    # insert). Rows from before the uid keep their
    # "ws-<id>-<name>" stem and are known in the cluster by their id label (legacy_labels).
    uid: Mapped[str] = mapped_column(String(32), unique=True, index=True)  # filled at insert
    object_base: Mapped[str] = mapped_column(String(63))
    legacy_labels: Mapped[bool] = mapped_column(Boolean, default=False)
    # Where it was built; teardown and the pod's state go there, never to a provider's new place.
    namespace: Mapped[str] = mapped_column(String(63))
    cluster_address: Mapped[str | None] = mapped_column(String(2048))
    # The provider settings its objects were last built with (workspaces.settings.snapshot);
    # NULL: built before they were recorded, so whether they are current is unknown.
    settings: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    owner: Mapped[User] = relationship()
    organization: Mapped[Organization] = relationship()
    provider: Mapped[Provider] = relationship(back_populates="workspaces")
    log: Mapped[list[BuildLogLine]] = relationship(
        back_populates="workspace", cascade="all, delete-orphan", passive_deletes=True,
        order_by="BuildLogLine.id",
    )

    @property
    def status_label(self) -> str:
        return self.status.capitalize()

    @property
    def busy(self) -> bool:
        return self.status in ("building", "deleting")

    def can_be_deleted_by(self, user) -> bool:
        """Its owner may delete a workspace, and so may a site admin (managers see it, no more)."""
        return self.owner_id == user.id or user.is_admin


class BuildLogLine(db.Model):
    """One line of a workspace's build (or teardown) log."""

    __tablename__ = "build_log_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    line: Mapped[str] = mapped_column(Text)

    workspace: Mapped[Workspace] = relationship(back_populates="log")
