"""Workspace providers, their checks and the objects Deploy created."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    event,
    inspect,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import Status, UTCDateTime, new_uid, provider_organizations, utcnow
from .people import Organization
from .scheduler import WorkerName

if TYPE_CHECKING:
    from .workspaces import Workspace


class Provider(db.Model):
    __tablename__ = "providers"
    __table_args__ = (UniqueConstraint("uid", name="uq_providers_uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # The provider's identity in its cluster (labels, marker): never changes, unlike the name.
    uid: Mapped[str] = mapped_column(String(36), default=new_uid)
    # Connection. Credentials are Fernet-encrypted JSON ({"token": ...} or client cert/key).
    cluster_address: Mapped[str | None] = mapped_column(String(2048))
    namespace: Mapped[str] = mapped_column(String(63))
    ca_cert: Mapped[str | None] = mapped_column(Text)
    credentials_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    credentials_kind: Mapped[str | None] = mapped_column(String(16))  # token | client_cert
    kubeconfig_context: Mapped[str | None] = mapped_column(String(253))
    token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    is_builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    # Features.
    e2e_encryption: Mapped[bool] = mapped_column(Boolean, default=False)
    external_ssh: Mapped[bool] = mapped_column(Boolean, default=False)
    access_url: Mapped[str | None] = mapped_column(String(2048))
    storage_class: Mapped[str | None] = mapped_column(String(253))
    service_account: Mapped[str | None] = mapped_column(String(253))
    # Scheduling; NULL affinity means the default affinity, {} means none.
    pod_tolerations: Mapped[list | None] = mapped_column(JSON(none_as_null=True))
    pod_node_selector: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))
    service_account_annotations: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))
    affinity: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))
    # Cordon.
    cordoned: Mapped[bool] = mapped_column(Boolean, default=False)
    cordon_reason: Mapped[str | None] = mapped_column(String(500))
    # Health.
    status: Mapped[str] = mapped_column(String(16), default=Status.PENDING.value, index=True)
    status_category: Mapped[str | None] = mapped_column(String(32))
    status_message: Mapped[str | None] = mapped_column(Text)
    status_warnings: Mapped[list | None] = mapped_column(JSON(none_as_null=True))
    kube_version: Mapped[str | None] = mapped_column(String(64))
    last_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_permissions_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    # Bumped by the database whenever anything shown in the provider's row changes, whoever
    # writes it (triggers: migrations/versions/0010_display_version_triggers.py); the badge
    # poll and the cache of rendered rows compare it. Never bumped by hand.
    display_version: Mapped[int] = mapped_column(Integer, default=1)
    # Bumped whenever anything a check depends on changes (see CHECKED_FIELDS): a check's
    # result applies only while the provider is still at the generation it was computed for.
    check_generation: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    # Scheduler claim (lease) and next due time.
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Optimistic locking for concurrent edits.
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    __mapper_args__ = {"version_id_col": version}

    organizations: Mapped[list[Organization]] = relationship(
        secondary=provider_organizations, order_by="Organization.name"
    )
    workspaces: Mapped[list[Workspace]] = relationship(back_populates="provider")
    checks: Mapped[list[ProviderCheck]] = relationship(
        back_populates="provider",
        cascade="all, delete-orphan",
        order_by="ProviderCheck.checked_at.desc()",
        passive_deletes=True,
    )
    bootstrap_objects: Mapped[list[BootstrapObject]] = relationship(
        back_populates="provider", cascade="all, delete-orphan", passive_deletes=True,
        order_by="BootstrapObject.id",
    )

    @property
    def status_label(self) -> str:
        return Status(self.status).label

    @property
    def has_credentials(self) -> bool:
        return self.credentials_encrypted is not None


# What a health check depends on. A change to any of these, whichever code path writes it,
# starts a new check generation: the checks under way for the old values are superseded.
CHECKED_FIELDS = (
    "name", "cluster_address", "ca_cert", "credentials_encrypted", "namespace", "storage_class",
    "service_account", "service_account_annotations", "external_ssh", "is_builtin",
)


@event.listens_for(Provider, "before_update")
def _start_check_generation(mapper, connection, provider: Provider) -> None:
    state = inspect(provider)
    changed = {name for name in CHECKED_FIELDS if state.attrs[name].history.has_changes()}
    if not changed:
        return
    provider.check_generation = Provider.check_generation + 1  # in the UPDATE itself
    # Due at once, and free: a claim taken for the old settings no longer holds it back.
    provider.next_check_at = provider.claimed_by = provider.claimed_until = None
    if "credentials_encrypted" in changed:
        # Warnings about the old credentials (such as its token's expiry) go with them.
        provider.status_warnings = None
        if provider.status == Status.READY.value:
            provider.status_message = None


class ProviderCheck(db.Model):
    """One health-check result; the history is trimmed to CHECK_HISTORY rows per provider."""

    __tablename__ = "provider_checks"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(
        ForeignKey("providers.id", ondelete="CASCADE"), index=True
    )
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ok: Mapped[bool] = mapped_column(Boolean)
    category: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    trigger: Mapped[str] = mapped_column(String(16), default="scheduled")
    worker: Mapped[str | None] = mapped_column(String(128))  # which scheduler process checked
    # Who asked for a check that was not scheduled (Check now, a save, Deploy): a username.
    checked_by: Mapped[str | None] = mapped_column(String(64))
    duration_ms: Mapped[float | None] = mapped_column(Float)
    # Computed for connection settings changed since: recorded, but not applied to the status.
    superseded: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # Unique per result: a write sent again after a commit whose answer was lost finds it.
    result_key: Mapped[str | None] = mapped_column(String(32), unique=True, index=True)

    provider: Mapped[Provider] = relationship(back_populates="checks")

    @property
    def origin(self) -> str:
        """Who ran the check: "Scheduler on host (pid 42)", or "Check now by ada"."""
        if self.trigger == "scheduled":
            worker = WorkerName.parse(self.worker)
            return f"Scheduler on {worker.host} (pid {worker.pid})" if worker else "Scheduler"
        action = _ASKED_BY.get(self.trigger, self.trigger.capitalize())
        return f"{action} by {self.checked_by}" if self.checked_by else action


# How a check that someone asked for is named, by its trigger.
_ASKED_BY = {"manual": "Check now", "save": "Saved", "deploy": "Deploy"}


class BootstrapObject(db.Model):
    """A bootstrap object that Deploy created for a provider (not one that was already there):
    the only ones that "remove the bootstrap resources" may delete."""

    __tablename__ = "provider_bootstrap_objects"
    __table_args__ = (UniqueConstraint("provider_id", "kind", "namespace", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(
        ForeignKey("providers.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(64))
    namespace: Mapped[str] = mapped_column(String(63), default="")  # "" for cluster-wide
    name: Mapped[str] = mapped_column(String(253))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    provider: Mapped[Provider] = relationship(back_populates="bootstrap_objects")
