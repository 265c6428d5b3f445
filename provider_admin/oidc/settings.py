"""The single sign-on settings, read and checked once at start: a mistake in the mapping is
an error that names the setting, not a surprise at someone's sign-in."""
import json
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from authlib.common.security import is_secure_transport

from ..models import Role

ROLES = [role.value for role in Role]
# Highest first: when several groups map to a role, the most powerful one wins.
RANK = {Role.ADMIN.value: 3, Role.MANAGER.value: 2, Role.MEMBER.value: 1}


@dataclass(frozen=True)
class Settings:
    issuer: str
    client_id: str
    client_secret: str | None
    scopes: str
    groups_claim: tuple[str, ...]  # the path into the claims
    role_map: dict[str, str] = field(default_factory=dict)
    default_role: str = Role.MEMBER.value
    organization_map: dict[str, str] = field(default_factory=dict)
    organization_prefix: str | None = None
    allow_signup: bool = False
    allow_unverified_email: bool = False
    timeout: float = 10.0

    @property
    def syncs_role(self) -> bool:
        return bool(self.role_map)

    @property
    def syncs_organizations(self) -> bool:
        return bool(self.organization_map or self.organization_prefix)


def _fail(name: str, message: str):
    raise ValueError(f"PROVIDER_ADMIN_{name}: {message}")


def _mapping(config, name: str) -> dict:
    value = config[name]
    if isinstance(value, str):  # from config.py as a JSON string, or an environment value JSON refused
        try:
            value = json.loads(value) if value.strip() else {}
        except ValueError as error:
            _fail(name, f"not valid JSON ({error})")
    if not isinstance(value, dict):
        _fail(name, 'must be a JSON object such as {"group": "value"}')
    for key, item in value.items():
        if not isinstance(item, str) or not item.strip() or not str(key).strip():
            _fail(name, f"the group {key!r} must map to a non-empty text")
    return {str(key): item.strip() for key, item in value.items()}


def _issuer(value) -> str:
    issuer = str(value or "").strip().rstrip("/")
    parts = urlsplit(issuer)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        _fail("OIDC_ISSUER", "must be the provider's https URL, e.g. https://sso.example.com/realms/acme")
    if not is_secure_transport(issuer):
        _fail("OIDC_ISSUER", "must be https (plain http only on this machine: localhost or a loopback address)")
    return issuer


def _flag(value) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "on")


def load(config) -> Settings | None:
    """The settings, or None while no issuer is set (single sign-on off)."""
    if not config.get("OIDC_ISSUER"):
        return None
    issuer = _issuer(config["OIDC_ISSUER"])
    if not config.get("OIDC_CLIENT_ID"):
        _fail("OIDC_CLIENT_ID", "must be set with PROVIDER_ADMIN_OIDC_ISSUER (the client registered at the provider)")
    role_map = _mapping(config, "OIDC_ROLE_MAP")
    for group, role in role_map.items():
        if role not in ROLES:
            _fail("OIDC_ROLE_MAP", f"the group {group!r} maps to {role!r}; a role is one of {', '.join(ROLES)}")
    default_role = str(config["OIDC_DEFAULT_ROLE"]).strip()
    if default_role not in ROLES:
        _fail("OIDC_DEFAULT_ROLE", f"{default_role!r} is not a role; use one of {', '.join(ROLES)}")
    claim = str(config["OIDC_GROUPS_CLAIM"] or "").strip()
    path = tuple(claim.split("."))
    if not claim or not all(path):
        _fail("OIDC_GROUPS_CLAIM", "must name a claim, e.g. groups, or a dotted path such as realm_access.roles")
    scopes = " ".join(str(config["OIDC_SCOPES"]).split())
    if "openid" not in scopes.split():
        _fail("OIDC_SCOPES", "must include openid")
    return Settings(
        issuer=issuer, client_id=str(config["OIDC_CLIENT_ID"]), client_secret=config.get("OIDC_CLIENT_SECRET") or None,
        scopes=scopes, groups_claim=path, role_map=role_map, default_role=default_role,
        organization_map=_mapping(config, "OIDC_ORGANIZATION_MAP"),
        organization_prefix=str(config["OIDC_ORGANIZATION_PREFIX"]) if config.get("OIDC_ORGANIZATION_PREFIX") else None,
        allow_signup=_flag(config["OIDC_ALLOW_SIGNUP"]),
        allow_unverified_email=_flag(config["OIDC_ALLOW_UNVERIFIED_EMAIL"]),
        timeout=float(config["OIDC_TIMEOUT"]),
    )
