"""A provider's bootstrap in its cluster: Deploy, the record of what it created, and removal.

Deploy records the objects it created (not those that were already there); removal deletes
only those, and only while they still carry the provider's uid. Both audit per object.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .. import audit, kube
from ..models import BootstrapObject, Provider
from .connection import connection_for, limits

NOTHING_RECORDED = ("nothing to remove: Deploy created no object in the cluster for this provider "
                    "(objects applied with kubectl stay; remove them with kubectl delete -f)")
NOT_ASKED = "left in the cluster (removal was not asked for)"


def objects(provider: Provider) -> list[dict]:
    """The provider's bootstrap manifest: what the download offers and Deploy applies."""
    return kube.bootstrap_manifest(
        provider_name=provider.name, namespace=provider.namespace, provider_uid=provider.uid,
        needs_service_accounts=bool(provider.service_account_annotations),
        needs_services=bool(provider.external_ssh))


def deploy(provider: Provider) -> list[kube.Outcome]:
    """Converge the bootstrap with the stored credentials; record and audit what happened."""
    try:
        conn = connection_for(provider)
    except (ValueError, kube.NotInClusterError) as exc:
        outcomes = [kube.Outcome("", "", kube.COULD_NOT + str(exc))]
    else:
        outcomes = kube.deploy(conn, objects(provider), provider_uid=provider.uid,
                               provider_name=provider.name, **limits())
    known = {(b.kind, b.namespace, b.name) for b in provider.bootstrap_objects}
    for o in outcomes:
        if o.result == kube.CREATED and (o.kind, o.namespace, o.name) not in known:
            provider.bootstrap_objects.append(
                BootstrapObject(kind=o.kind, namespace=o.namespace, name=o.name))
    audit.record("provider.deploy", provider, {"objects": [str(o) for o in outcomes]})
    return outcomes


@dataclass
class Removal:
    """What removing a provider's bootstrap did, and the commands for what it could not."""

    outcomes: list[kube.Outcome] = field(default_factory=list)
    by_hand: list[str] = field(default_factory=list)

    @property
    def lines(self) -> list[str]:
        return [str(o) for o in self.outcomes] or [NOTHING_RECORDED]

    def audit(self) -> dict:
        changes = {"bootstrap removal": self.lines}
        if self.by_hand:
            changes["remove by hand"] = self.by_hand
        return changes

    def message(self) -> str:
        text = "Bootstrap resources:\n" + "\n".join(self.lines)
        if self.by_hand:
            text += "\nTo remove what is left by hand:\n" + "\n".join(self.by_hand)
        return text


def remove(provider: Provider) -> Removal:
    """Delete from the cluster what Deploy created for `provider` and still carries its uid."""
    refs = [kube.Ref(b.kind, b.namespace, b.name) for b in provider.bootstrap_objects]
    if not refs:
        return Removal()
    try:
        conn = connection_for(provider)
    except (ValueError, kube.NotInClusterError) as exc:
        outcomes = [kube.Outcome(r.kind, r.name, kube.COULD_NOT_REMOVE + str(exc), r.namespace)
                    for r in refs]
    else:
        outcomes = kube.remove_bootstrap(conn, refs, provider_uid=provider.uid, **limits())
    return Removal(outcomes, kube.by_hand(outcomes))


def delete_audit(provider: Provider, removal: Removal | str | None, *, actor=None) -> None:
    """The audit entry of a provider's deletion, with what happened in its cluster (or why
    nothing was asked of it)."""
    changes = removal.audit() if isinstance(removal, Removal) else {"bootstrap removal": removal or NOT_ASKED}
    audit.record("provider.delete", provider, changes, **({"actor": actor} if actor else {}))

