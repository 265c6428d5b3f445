"""Database models (SQLAlchemy 2 typed mappings), one module per kind of thing; every name
is importable from here."""
from .audit import AuditEvent
from .base import Role, Status, UTCDateTime, new_uid, organization_members, provider_organizations, utcnow
from .notifications import (
    DeliveryStatus, NotificationDelivery, NotificationEvent, NotificationTarget, TargetKind,
)
from .people import Organization, SignInThrottle, User
from .providers import CHECKED_FIELDS, BootstrapObject, Provider, ProviderCheck
from .workspaces import BuildLogLine, Workspace

__all__ = [
    "AuditEvent", "BootstrapObject", "DeliveryStatus", "NotificationDelivery", "NotificationEvent",
    "NotificationTarget", "TargetKind", "BuildLogLine", "CHECKED_FIELDS", "Organization", "Provider", "ProviderCheck",
    "Role", "SignInThrottle", "Status", "UTCDateTime", "User", "Workspace", "new_uid", "organization_members",
    "provider_organizations", "utcnow",
]
