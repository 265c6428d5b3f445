"""Database models (SQLAlchemy 2 typed mappings)."""
from __future__ import annotations

import enum
import uuid
from datetime import datetime, timezone

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
    inspect,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from .extensions import db


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
    duration_ms: Mapped[float | None] = mapped_column(Float)
    # Computed for connection settings changed since: recorded, but not applied to the status.
    superseded: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)

    provider: Mapped[Provider] = relationship(back_populates="checks")


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


class AuditEvent(db.Model):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(254))  # kept when the user is gone
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[int | None] = mapped_column(Integer)
    target_name: Mapped[str] = mapped_column(String(254))
    changes: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))
