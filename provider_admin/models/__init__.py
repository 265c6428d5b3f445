"""Database models (SQLAlchemy 2 typed mappings), one module per kind of thing; every name
is importable from here."""
from .audit import AuditEvent
from .metrics import CheckTally
from .base import Role, Status, UTCDateTime, new_uid, organization_members, provider_organizations, utcnow
from .notifications import (
    DeliveryStatus, NotificationDelivery, NotificationEvent, NotificationTarget, TargetKind,
)
from .people import Organization, SignInThrottle, User
from .providers import CHECKED_FIELDS, BootstrapObject, Provider, ProviderCheck
from .scheduler import SchedulerHeartbeat
from .workspaces import BuildLogLine, Workspace

__all__ = [
    "AuditEvent", "BootstrapObject", "BuildLogLine", "CHECKED_FIELDS", "CheckTally", "DeliveryStatus",
    "NotificationDelivery", "NotificationEvent", "NotificationTarget", "Organization", "Provider", "ProviderCheck",
    "Role", "SchedulerHeartbeat", "SignInThrottle", "Status", "TargetKind", "UTCDateTime", "User", "Workspace",
    "new_uid", "organization_members", "provider_organizations", "utcnow",
]
