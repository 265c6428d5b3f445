"""The permissions a provider needs in its namespace: one list for the Role and the check."""
from __future__ import annotations

from typing import NamedTuple

MARKER_NAME = "provider-admin-marker"
MARKER_KEY = "provider"  # the provider's name, for humans
MARKER_UID_KEY = "provider-uid"  # its identity: what the check compares
MARKER_GRANTS_KEY = "grants"  # the permissions the bootstrap's Role grants, one per line
MANAGED_BY_LABEL = {"app.kubernetes.io/managed-by": "provider-admin"}
UID_LABEL = "provider-admin.io/provider-uid"  # on every bootstrap object of one provider

WORKLOAD_VERBS = ("create", "get", "list", "delete")
SERVICE_ACCOUNT_VERBS = ("create", "get", "patch", "delete")
SERVICE_VERBS = ("create", "get", "list", "patch", "delete")  # external SSH's LoadBalancer Services


class Permission(NamedTuple):
    verb: str
    resource: str
    group: str = ""

    def __str__(self) -> str:
        return f"{self.verb} {self.resource}"


def rules(*, needs_service_accounts: bool,
          needs_services: bool = False) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """(API group, resources, verbs) triples, as a Role lists them: service accounts only for
    service account annotations, services only for external SSH."""
    result = [
        ("", ("pods", "persistentvolumeclaims"), WORKLOAD_VERBS),
        ("", ("configmaps",), ("get",)),
        ("", ("events",), ("list",)),
    ]
    if needs_service_accounts:
        result.append(("", ("serviceaccounts",), SERVICE_ACCOUNT_VERBS))
    if needs_services:
        result.append(("", ("services",), SERVICE_VERBS))
    return result


def required_permissions(*, needs_service_accounts: bool, needs_services: bool = False) -> list[Permission]:
    """Every verb on every resource, in a stable order, for SelfSubjectAccessReviews."""
    return [
        Permission(verb, resource, group)
        for group, resources, verbs in rules(needs_service_accounts=needs_service_accounts,
                                             needs_services=needs_services)
        for resource in resources
        for verb in verbs
    ]


def grants(*, needs_service_accounts: bool, needs_services: bool = False) -> str:
    """What the marker records that the bootstrap grants ("create pods" per line)."""
    return "\n".join(map(str, required_permissions(needs_service_accounts=needs_service_accounts,
                                                   needs_services=needs_services)))


def missing_grants(recorded: str, *, needs_service_accounts: bool,
                   needs_services: bool = False) -> list[str]:
    """The needed permissions that a marker's recorded grants lack, in a stable order."""
    have = set(recorded.splitlines())
    needed = required_permissions(needs_service_accounts=needs_service_accounts,
                                  needs_services=needs_services)
    return [str(p) for p in needed if str(p) not in have]
