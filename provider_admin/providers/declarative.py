"""Providers as a file: `providers export` writes them as YAML (never a secret), `providers
apply` makes the database match a file, with the same form, guards and audit entries as the
pages, after printing what it will change.

A file names credentials, never holds them: `credentials: {token_env: NAME}` (or `token_file`,
`kubeconfig_env`, `kubeconfig_file`). Without `credentials` a provider keeps the ones it has,
as long as its connection stays the same (they are only ever sent where they were entered
for). Applying a file twice changes nothing the second time.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from werkzeug.datastructures import MultiDict

from ..extensions import db
from ..models import Provider, Workspace
from . import bootstrap, formdata, service
from .forms import ProviderForm

KIND, API_VERSION = "ProviderList", "provider-admin/v1"
TEXT_FIELDS = ("cluster_address", "namespace", "ca_certificate", "kubeconfig_context", "access_url",
               "storage_class", "service_account")
FLAGS = ("e2e_encryption", "external_ssh")
CREDENTIAL_SOURCES = {"token_env": "token", "token_file": "token", "kubeconfig_env": "kubeconfig",
                      "kubeconfig_file": "kubeconfig"}
KEYS = {"name", "credentials", "organizations", "cordoned", "cordon_reason",
        *TEXT_FIELDS, *FLAGS, *service.SCHEDULING_FIELDS}


class FileError(Exception):
    """The file is wrong: every problem found, each naming where it is."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


# Export ------------------------------------------------------------------------------------

def export() -> str:
    providers = db.session.scalars(db.select(Provider).filter_by(is_builtin=False).order_by(Provider.name))
    document = {"apiVersion": API_VERSION, "kind": KIND, "providers": [_entry(p) for p in providers]}
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


def _entry(provider: Provider) -> dict:
    data = service.form_data(provider)
    entry = {"name": provider.name}
    for key in TEXT_FIELDS:
        if data.get(key):
            entry[key] = data[key]
    for key in FLAGS:
        entry[key] = bool(data[key])
    entry["organizations"] = [o.name for o in provider.organizations]
    for key in service.SCHEDULING_FIELDS:
        value = getattr(provider, key)
        if value is not None:  # affinity left out: the default
            entry[key] = value
    if provider.cordoned:
        entry["cordoned"], entry["cordon_reason"] = True, provider.cordon_reason or ""
    return entry


# Plan --------------------------------------------------------------------------------------

@dataclass
class Change:
    action: str  # "create", "update", "unchanged", "delete"
    name: str
    changes: dict = field(default_factory=dict)
    form: ProviderForm | None = None
    provider: Provider | None = None
    cordon: tuple[bool, str | None] | None = None  # wanted (cordoned, reason) when it differs

    def lines(self) -> list[str]:
        sign = {"create": "+", "update": "~", "unchanged": "=", "delete": "-"}[self.action]
        head = f"{sign} {self.action} provider {self.name}"
        if self.action == "delete":
            head += " (its record; objects in the cluster stay)"
        lines = [head]
        for key, change in self.changes.items():
            if isinstance(change, dict) and "from" in change:
                lines.append(f"    {key}: {_show(change['from'])} → {_show(change['to'])}")
            else:
                lines.append(f"    {key}: {change}")
        if self.cordon is not None:
            lines.append(f"    cordoned: {'yes (' + (self.cordon[1] or '') + ')' if self.cordon[0] else 'no'}")
        return lines


def _show(value) -> str:
    if value is None or value == "":
        return "(none)"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "…"


def plan(text: str, *, base: Path, environ=os.environ, prune: bool = False) -> list[Change]:
    """What applying the file would do; FileError when anything in it would be refused."""
    entries = _entries(text)
    problems, changes = [], []
    existing = {p.name: p for p in db.session.scalars(db.select(Provider))}
    for index, entry in enumerate(entries):
        where = f"providers[{index}] ({entry.get('name')})"
        try:
            changes.append(_plan_one(entry, existing.get(str(entry.get("name", "")).strip()), base, environ))
        except FileError as error:
            problems += [f"{where}: {p}" for p in error.problems]
    if prune:
        named = {str(e.get("name", "")).strip() for e in entries}
        for provider in existing.values():
            if provider.name in named or provider.is_builtin:
                continue
            count = db.session.scalar(db.select(db.func.count()).select_from(Workspace)
                                      .filter_by(provider_id=provider.id))
            if count:
                problems.append(f"{provider.name}: not in the file, but {count} workspace(s) run there: "
                                "delete them before pruning it")
            else:
                changes.append(Change("delete", provider.name, provider=provider))
    if problems:
        raise FileError(problems)
    return changes


def _entries(text: str) -> list[dict]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise FileError([f"not YAML: {error}"]) from None
    if not isinstance(document, dict) or document.get("kind") != KIND or \
            document.get("apiVersion") != API_VERSION or not isinstance(document.get("providers"), list):
        raise FileError([f"expected a mapping with apiVersion: {API_VERSION}, kind: {KIND} and a "
                         "list of providers"])
    problems, names = [], set()
    for index, entry in enumerate(document["providers"]):
        if not isinstance(entry, dict):
            problems.append(f"providers[{index}]: expected a mapping")
            continue
        name = str(entry.get("name", "")).strip()
        unknown = sorted(set(map(str, entry)) - KEYS)
        if unknown:
            problems.append(f"providers[{index}] ({name}): unknown field(s) {', '.join(unknown)}")
        if name in names:
            problems.append(f"providers[{index}] ({name}): the name is used twice in the file")
        names.add(name)
    if problems:
        raise FileError(problems)
    return document["providers"]


def _plan_one(entry: dict, provider: Provider | None, base: Path, environ) -> Change:
    form = ProviderForm(formdata=_formdata(entry, provider, base, environ), provider=provider,
                        meta={"csrf": False})
    form.organizations.choices = service.organization_choices()
    if not service.check_form(provider, form):
        raise FileError([f"{_key(f.name)}: {' '.join(map(str, f.errors))}" for f in form if f.errors])
    cordon = _cordon(entry, provider)
    shadow = _shadow(provider)
    changes = service.apply(shadow, form)
    action = "create" if provider is None else ("update" if changes or cordon else "unchanged")
    return Change(action, form.name.data, changes, form, provider, cordon)


def _key(name: str) -> str:
    return {"token": "credentials", "kubeconfig": "credentials", "version": "(version)"}.get(name, name)


def _formdata(entry: dict, provider: Provider | None, base: Path, environ) -> MultiDict:
    for key in FLAGS:
        if entry.get(key) not in (None, True, False):
            raise FileError([f"{key}: true or false"])
    values = {key: entry[key] for key in formdata.FIELDS if key in entry}
    for kind, secret in _credentials(entry.get("credentials"), base, environ).items():
        if not _already_stored(provider, kind, secret, entry):
            values[kind] = secret
        elif kind == "kubeconfig":  # the connection it gave stays as stored
            values["cluster_address"] = entry.get("cluster_address") or provider.cluster_address
            values["ca_certificate"] = entry.get("ca_certificate") or provider.ca_cert
    try:
        return formdata.to_formdata(values, provider, partial=False)
    except formdata.FieldProblems as error:
        raise FileError([f"{k}: {v}" for k, v in error.problems.items()]) from None


def _credentials(spec, base: Path, environ) -> dict:
    if spec is None:
        return {}
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in CREDENTIAL_SOURCES:
        raise FileError(["credentials: one of " + ", ".join(f"{k}: …" for k in CREDENTIAL_SOURCES)
                         + " (a file never holds the secret itself)"])
    (source, name), = spec.items()
    name, kind = str(name), CREDENTIAL_SOURCES[source]
    tidy = str.strip if kind == "token" else str  # a token file ends with a line break
    if source.endswith("_env"):
        if not environ.get(name):
            raise FileError([f"credentials: the environment variable {name} is not set"])
        return {kind: tidy(environ[name])}
    path = (base / name).expanduser()
    try:
        return {kind: tidy(path.read_text())}
    except (OSError, UnicodeDecodeError) as error:
        raise FileError([f"credentials: cannot read {name}: {getattr(error, 'strerror', None) or error}"]) from None


def _already_stored(provider: Provider | None, kind: str, secret: str, entry: dict) -> bool:
    """The file names the credentials the provider already has, for the same connection:
    nothing to change (so that applying a file twice changes nothing)."""
    from .. import crypto
    from ..kube import KubeconfigError, parse_kubeconfig

    if provider is None or not provider.has_credentials:
        return False
    stored = json.loads(crypto.decrypt(provider.credentials_encrypted) or "{}")
    if kind == "token":
        return stored == {"token": secret.strip()} and not service.connection_changes(
            provider, entry.get("cluster_address"), entry.get("ca_certificate"), entry.get("kubeconfig_context"))
    try:
        conn, _ = parse_kubeconfig(secret, (entry.get("kubeconfig_context") or None))
    except KubeconfigError:
        return False  # the form says what is wrong with it
    given = {k: v for k, v in {"token": conn.token, "client_cert": conn.client_cert,
                               "client_key": conn.client_key}.items() if v}
    return given == stored and conn.server == provider.cluster_address and \
        "".join((conn.ca_cert or "").split()) == "".join((provider.ca_cert or "").split())


def _cordon(entry: dict, provider: Provider | None) -> tuple[bool, str | None] | None:
    wanted = entry.get("cordoned", False)
    if wanted not in (True, False):
        raise FileError(["cordoned: true or false"])
    reason = (str(entry.get("cordon_reason") or "").strip() or None) if wanted else None
    if reason and len(reason) > 500:
        raise FileError(["cordon_reason: at most 500 characters"])
    current = (bool(provider and provider.cordoned), (provider.cordon_reason or None) if provider and provider.cordoned
               else None)
    return None if (wanted, reason) == current else (wanted, reason)


def _shadow(provider: Provider | None) -> Provider:
    """A copy outside the session to apply the form to: the plan changes nothing."""
    if provider is None:
        return Provider()
    columns = {c.key: getattr(provider, c.key) for c in Provider.__mapper__.column_attrs}
    shadow = Provider(**columns)
    shadow.organizations = list(provider.organizations)
    return shadow


# Apply -------------------------------------------------------------------------------------

def apply(changes: list[Change], actor) -> None:
    """Carry out a checked plan, change by change, each with its audit entry. Deletions go
    first, in one transaction: nothing else is written if one is refused."""
    for change in changes:
        if change.action == "delete":
            service.lock(change.provider, delete=True)
            bootstrap.delete_audit(change.provider, "not asked (providers apply --prune)", actor=actor)
            db.session.delete(change.provider)
    db.session.commit()
    for change in changes:
        if change.action in ("delete", "unchanged"):
            continue
        if change.action == "unchanged":
            continue
        provider = change.provider
        if provider is None or change.changes:
            provider, _ = service.save(provider, change.form, actor=actor)
            if provider is None:  # a concurrent create took the name
                raise FileError([f"{change.name}: {' '.join(change.form.name.errors)}"])
        if change.cordon is not None:
            wanted, reason = change.cordon
            service.cordon(provider, reason or "", actor=actor) if wanted else service.uncordon(provider, actor=actor)
