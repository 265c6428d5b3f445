"""The permissions a provider needs in its namespace: one list for the Role and the check."""
from __future__ import annotations

from typing import NamedTuple

MARKER_NAME = "provider-admin-marker"
MARKER_KEY = "provider"
MANAGED_BY_LABEL = {"app.kubernetes.io/managed-by": "provider-admin"}

WORKLOAD_VERBS = ("create", "get", "list", "delete")
SERVICE_ACCOUNT_VERBS = ("create", "get", "patch", "delete")


class Permission(NamedTuple):
    verb: str
    resource: str
    group: str = ""

    def __str__(self) -> str:
        return f"{self.verb} {self.resource}"


def rules(*, needs_service_accounts: bool) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """(API group, resources, verbs) triples, as a Role lists them."""
    result = [
        ("", ("pods", "persistentvolumeclaims"), WORKLOAD_VERBS),
        ("", ("configmaps",), ("get",)),
        ("", ("events",), ("list",)),
    ]
    if needs_service_accounts:
        result.append(("", ("serviceaccounts",), SERVICE_ACCOUNT_VERBS))
    return result


def required_permissions(*, needs_service_accounts: bool) -> list[Permission]:
    """Every verb on every resource, in a stable order, for SelfSubjectAccessReviews."""
    return [
        Permission(verb, resource, group)
        for group, resources, verbs in rules(needs_service_accounts=needs_service_accounts)
        for resource in resources
        for verb in verbs
    ]
