"""Provider changes: form to model, the guards, and what the audit log records."""
import json
from urllib.parse import urlsplit, urlunsplit

from flask_login import current_user
from sqlalchemy import func
from sqlalchemy.orm.exc import StaleDataError

from .. import audit, crypto
from ..conflicts import Conflict, Gone
from ..database import duplicate_at
from ..kube import token_expiry
from ..extensions import db
from ..models import Organization, Provider, User, Workspace
from ..notifications import events as notify
from . import scheduling
from .bootstrap import delete_audit

PLAIN_FIELDS = (
    "name", "cluster_address", "namespace", "e2e_encryption", "external_ssh",
    "access_url", "storage_class", "service_account",
)
SCHEDULING_FIELDS = ("pod_tolerations", "pod_node_selector", "service_account_annotations", "affinity")


def form_data(provider: Provider) -> dict:
    """The values an edit form starts with (never the credentials)."""
    data = {field: getattr(provider, field) for field in PLAIN_FIELDS}
    data["ca_certificate"] = provider.ca_cert
    data["kubeconfig_context"] = provider.kubeconfig_context
    data["organizations"] = [org.id for org in provider.organizations]
    data["version"] = provider.version
    for field in SCHEDULING_FIELDS:
        value = getattr(provider, field)
        if field == "affinity":
            value = scheduling.effective_affinity(value)
        data[field] = scheduling.dumps(value)
    return data


def connection_changes(provider: Provider, address: str | None, ca_cert: str | None,
                       context: str | None) -> list[str]:
    """What of the provider's connection these values change, e.g. ["cluster address"].

    Stored credentials are only ever sent to the address they were entered for: a change
    here needs them entered again. Spelling does not count (a trailing slash, the case of
    the host, the line breaks of a PEM), so saving an unchanged form never asks for them.
    """
    changed = []
    if _address_key(address) != _address_key(provider.cluster_address):
        changed.append("cluster address")
    if "".join((ca_cert or "").split()) != "".join((provider.ca_cert or "").split()):
        changed.append("CA certificate")
    if (context or "").strip() != (provider.kubeconfig_context or "").strip():
        changed.append("kubeconfig context")
    return changed


def credentials_required_message(provider: Provider, changed: list[str]) -> str:
    """What to say at the token field when `connection_changes` found something."""
    what = ", ".join(changed[:-1]) + " and " + changed[-1] if len(changed) > 1 else changed[0]
    if "kubeconfig context" in changed or provider.credentials_kind == "client_cert":
        again = "paste the kubeconfig again (or enter a service account token)"
    else:
        again = "enter the service account token again (or paste a kubeconfig)"
    return (f"The {what} changed: {again} — stored credentials are only sent to the address "
            "they were entered for.")


def _address_key(address: str | None) -> str:
    value = (address or "").strip()
    try:
        parts = urlsplit(value)
    except ValueError:
        return value
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"),
                       parts.query, parts.fragment))


def organization_choices() -> list[tuple[int, str]]:
    """(id, name) of every organization, by name: plain rows (the providers page reads them
    on every load, for its filter)."""
    return [tuple(row) for row in db.session.execute(
        db.select(Organization.id, Organization.name).order_by(Organization.name))]


def workspace_counts_by_org(provider: Provider) -> dict[int, int]:
    rows = db.session.execute(
        db.select(Workspace.organization_id, func.count())
        .filter(Workspace.provider_id == provider.id)
        .group_by(Workspace.organization_id)
    )
    return dict(rows.all())


def allowlist_errors(provider: Provider, new_ids: set[int]) -> list[str]:
    """An organization that still has workspaces here cannot leave the allowlist."""
    if provider.id is None:
        return []
    counts = workspace_counts_by_org(provider)
    errors = []
    for org in provider.organizations:
        if org.id not in new_ids and counts.get(org.id):
            n = counts[org.id]
            errors.append(
                f"{org.name} still has {n} workspace{'s' if n != 1 else ''} on this provider: "
                "delete them before removing it from the allowlist."
            )
    return errors


def location_errors(provider: Provider, form) -> dict[str, str]:
    """A workspace's objects stay where they were built, and its teardown goes there: while a
    provider has workspaces, its namespace and cluster address cannot change (a new token for
    the same address can). Returns the message per form field."""
    if provider.id is None:
        return {}
    address = (form.kube_connection.server if form.kube_connection is not None
               else (form.cluster_address.data or "").strip() or None)
    address_field = "kubeconfig" if form.kube_connection is not None else "cluster_address"
    changed = [(field, label) for field, label, old, new in (
        ("namespace", "Namespace", provider.namespace, (form.namespace.data or "").strip()),
        (address_field, "Cluster address", provider.cluster_address,
         provider.cluster_address if provider.is_builtin else address),
    ) if old != new]
    if not changed:
        return {}
    rows = db.session.execute(
        db.select(User.username, Workspace.name).join(Workspace.owner)
        .filter(Workspace.provider_id == provider.id).order_by(User.username, Workspace.name)
    ).all()
    if not rows:
        return {}
    listed = ", ".join(f"{row.username}/{row.name}" for row in rows[:10])
    listed += f" and {len(rows) - 10} more" if len(rows) > 10 else ""
    runs = f"{len(rows)} workspace runs" if len(rows) == 1 else f"{len(rows)} workspaces run"
    return {field: f"{label} cannot change while {runs} here: {listed}. Their objects stay where "
                   f"they were built: delete the workspaces first, or add a provider for the new place."
            for field, label in changed}


def apply(provider: Provider, form) -> dict:
    """Copy a validated form onto the provider; return the changes for the audit log."""
    if provider.id is not None and str(provider.version) != (form.version.data or ""):
        raise Conflict()
    before = _snapshot(provider)
    new_credentials = bool(form.token.data) or form.kube_connection is not None
    moved = provider.id is not None and connection_changes(
        provider, form.cluster_address.data, form.ca_certificate.data, form.kubeconfig_context.data)
    for field in PLAIN_FIELDS:
        value = getattr(form, field).data
        setattr(provider, field, value.strip() or None if isinstance(value, str) else value)
    provider.ca_cert = (form.ca_certificate.data or "").strip() or None
    if form.kube_connection is not None:
        _apply_kubeconfig(provider, form.kube_connection, form.kubeconfig_context.data)
    elif form.token.data:
        _set_credentials(provider, {"token": form.token.data})
        provider.kubeconfig_context = None
    elif moved and provider.has_credentials:
        # The form refuses this; should a caller skip it, the credentials stay behind.
        provider.credentials_encrypted = provider.credentials_kind = None
        provider.token_expires_at = None
    for field in SCHEDULING_FIELDS:
        value = getattr(form, field).parsed
        if field == "affinity" and value == scheduling.DEFAULT_AFFINITY:
            value = None  # keep "default" semantics when the default is saved back unchanged
        setattr(provider, field, value)
    wanted = set(form.organizations.data or [])
    provider.organizations = [
        org for org in db.session.scalars(db.select(Organization).filter(Organization.id.in_(wanted)))
    ]
    changes = _diff(before, _snapshot(provider))
    if new_credentials:
        changes["credentials"] = "(changed)"
    elif moved and before["credentials"]:
        changes["credentials"] = "(removed: the connection changed)"
    return changes


def _set_credentials(provider: Provider, secret: dict) -> None:
    secret = {k: v for k, v in secret.items() if v}
    provider.credentials_encrypted = crypto.encrypt(json.dumps(secret))
    provider.credentials_kind = "token" if "token" in secret else "client_cert"
    provider.token_expires_at = token_expiry(secret.get("token"))


def _apply_kubeconfig(provider: Provider, conn, context: str | None) -> None:
    """A pasted kubeconfig fills the connection; the kubeconfig itself is not kept."""
    provider.cluster_address = conn.server
    provider.ca_cert = conn.ca_cert
    provider.kubeconfig_context = (context or "").strip() or None
    _set_credentials(provider, {"token": conn.token, "client_cert": conn.client_cert,
                                "client_key": conn.client_key})


def _snapshot(provider: Provider) -> dict:
    snap = {field: getattr(provider, field) for field in PLAIN_FIELDS + SCHEDULING_FIELDS}
    snap["ca_certificate"] = provider.ca_cert
    snap["kubeconfig_context"] = provider.kubeconfig_context
    snap["credentials"] = provider.has_credentials
    snap["organizations"] = sorted(org.name for org in provider.organizations)
    return snap


def _diff(before: dict, after: dict) -> dict:
    return {k: {"from": before[k], "to": after[k]} for k in after if before.get(k) != after[k]}


# The changes every caller makes the same way: the pages, the API and `providers apply` ------

def check_form(provider: Provider | None, form) -> bool:
    """The form's own checks, then the guards that need the stored provider (an organization
    with workspaces stays on the allowlist; a provider with workspaces keeps its place). The
    problems are left at the form's fields."""
    if not form.validate():
        return False
    if provider is not None:
        form.organizations.errors = allowlist_errors(provider, set(form.organizations.data or []))
        for name, message in location_errors(provider, form).items():
            getattr(form, name).errors.append(message)
    return not any(field.errors for field in form)


def save(provider: Provider | None, form, *, actor=None) -> tuple[Provider | None, dict]:
    """Create (provider None) or update from a checked form, with its audit entry, committed.
    Returns the provider and its changes; (None, {}) when a concurrent create took the name
    (the message is at the name field). Raises Conflict when it changed since it was read."""
    target = provider or Provider()
    try:
        with duplicate_at(form, "name") as refused:
            if provider is not None:
                lock(provider)
            changes = apply(target, form)
            db.session.add(target)
            db.session.flush()
            audit.record("provider.update" if provider else "provider.create", target, changes,
                         **({"actor": actor} if actor else {}))
            db.session.commit()
    except StaleDataError:
        db.session.rollback()
        raise Conflict() from None
    except Conflict:
        db.session.rollback()
        raise
    return (None, {}) if refused else (target, changes)


def lock(provider: Provider, *, delete: bool = False) -> None:
    """Take the provider's row lock before any other write of a change to it, in the mode the
    change needs (PostgreSQL; SQLite writes one at a time anyway). Taken later, by the first
    row that refers to it, a delete would have to strengthen its lock while a concurrent
    change waits for it: a deadlock. Raises Gone when it was deleted, Conflict when it
    changed since it was read."""
    version = db.session.scalar(db.select(Provider.version).filter_by(id=provider.id)
                                .with_for_update(key_share=not delete))
    if version is None:
        raise Gone("provider")
    if version != provider.version:
        raise Conflict()


def delete(provider: Provider, removal=None, *, actor=None) -> None:
    """Delete the provider's record with its audit entry (the caller says why it may go, and
    removes what it should from the cluster first: `bootstrap`)."""
    lock(provider, delete=True)
    delete_audit(provider, removal, **({"actor": actor} if actor else {}))
    db.session.delete(provider)
    _commit_or_conflict()


def cordon(provider: Provider, reason: str, *, actor=None) -> None:
    """Stop new workspaces on the provider (those it has keep running)."""
    lock(provider)
    provider.cordoned, provider.cordon_reason = True, reason.strip()
    audit.record("provider.cordon", provider, {"reason": provider.cordon_reason}, **({"actor": actor} if actor else {}))
    notify.cordon_changed(provider, actor or current_user)
    _commit_or_conflict()


def uncordon(provider: Provider, *, actor=None) -> bool:
    """Let the provider take new workspaces again; False when it was not cordoned."""
    if not provider.cordoned:
        return False
    lock(provider)
    provider.cordoned, provider.cordon_reason = False, None
    audit.record("provider.uncordon", provider, **({"actor": actor} if actor else {}))
    notify.cordon_changed(provider, actor or current_user)
    _commit_or_conflict()
    return True


def _commit_or_conflict() -> None:
    try:
        db.session.commit()
    except StaleDataError:
        db.session.rollback()
        raise Conflict() from None


def why_not_deletable(provider: Provider) -> str | None:
    """The built-in provider is configured by its settings; a provider with workspaces keeps them."""
    if provider.is_builtin:
        return "The built-in provider is registered by the site's settings; remove it there."
    count = db.session.scalar(db.select(func.count()).select_from(Workspace).filter_by(provider_id=provider.id))
    if count:
        return (f"{count} workspace{'s' if count != 1 else ''} run{'s' if count == 1 else ''} on {provider.name}: "
                "delete them before deleting the provider.")
    return None
