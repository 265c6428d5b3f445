"""IdP sync's mapping: from the groups in a user's claims to a site role and organizations.

Pure functions of the claims and the settings, so that the claims page can show exactly what
a sign-in did, and why.
"""
from dataclasses import asdict, dataclass, field

from .settings import RANK, Settings


@dataclass
class Outcome:
    groups: list[str]
    role: str | None = None  # None: roles are not synced
    role_from: list[str] = field(default_factory=list)  # the groups that gave the role
    organizations: dict[str, list[str]] = field(default_factory=dict)  # name -> the groups that gave it
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def groups_in(claims: dict, path: tuple[str, ...]) -> tuple[list[str], str | None]:
    """The group names at `path` in the claims (a list, or one text), and a note when the
    claim is missing or of another shape."""
    value = claims
    for step in path:
        if not isinstance(value, dict) or step not in value:
            return [], f"The claim {'.'.join(path)} was not in what the provider sent: no groups."
        value = value[step]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return [], f"The claim {'.'.join(path)} is not a list of groups: no groups."
    return sorted({str(item) for item in value if isinstance(item, (str, int))}), None


def outcome(claims: dict, settings: Settings) -> Outcome:
    groups, note = groups_in(claims, settings.groups_claim)
    result = Outcome(groups=groups, notes=[note] if note else [])
    if settings.syncs_role:
        matched = [g for g in groups if g in settings.role_map]
        if matched:
            result.role = max((settings.role_map[g] for g in matched), key=RANK.__getitem__)
            result.role_from = [g for g in matched if settings.role_map[g] == result.role]
        else:
            result.role = settings.default_role
            result.notes.append(f"No group maps to a role: the default role, {result.role}.")
    for group in groups:
        name = settings.organization_map.get(group)
        if name is None and settings.organization_prefix and group.startswith(settings.organization_prefix):
            name = group[len(settings.organization_prefix):].strip() or None
        if name:
            result.organizations.setdefault(name, []).append(group)
    return result
