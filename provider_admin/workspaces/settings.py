"""The provider settings a workspace is built with: what is recorded on the workspace, how a
record compares with its provider's settings now, and how each setting is named.

A provider's settings shape only the objects built after they are saved; a workspace keeps
running with what it was built with until it is rebuilt. The record is a plain dict of the
values that went into its objects (the effective ones: the site's access URL when the
provider has none, the default affinity when none is set). A record of None means the
workspace was built before records were kept: whether it is current is unknown, and the
pages say so instead of guessing. A key missing from a record is unknown in the same way.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from flask import current_app

from .. import scheduling
from ..models import Provider, Workspace


@dataclass(frozen=True)
class Setting:
    key: str
    label: str  # as in "the previous access URL"
    form_field: str  # the provider form's field (and audit key) that sets it
    rebuilt: bool = True  # False: a rebuild keeps it (the home volume keeps its storage class)


SETTINGS = (
    Setting("provider_name", "provider name", "name"),  # in the pod's environment
    Setting("access_url", "access URL", "access_url"),
    Setting("e2e_encryption", "end-to-end encryption", "e2e_encryption"),
    Setting("external_ssh", "external SSH", "external_ssh"),
    Setting("service_account", "service account", "service_account"),
    Setting("service_account_annotations", "service account annotations", "service_account_annotations"),
    Setting("pod_tolerations", "pod tolerations", "pod_tolerations"),
    Setting("pod_node_selector", "pod node selector", "pod_node_selector"),
    Setting("affinity", "affinity", "affinity"),
    Setting("storage_class", "storage class", "storage_class", rebuilt=False),
)
BY_KEY = {setting.key: setting for setting in SETTINGS}
UNKNOWN = "unknown"  # a group of workspaces built before settings were recorded


def current(provider: Provider) -> dict:
    """The values a workspace built on `provider` now is made with, as recorded."""
    annotations = provider.service_account_annotations or None
    values = {
        "provider_name": provider.name,
        "access_url": provider.access_url or current_app.config["SITE_ACCESS_URL"],
        "e2e_encryption": bool(provider.e2e_encryption),
        "external_ssh": bool(provider.external_ssh),
        # With annotations each workspace gets its own account, so the plain one is not used.
        "service_account": None if annotations else provider.service_account or None,
        "service_account_annotations": annotations,
        "pod_tolerations": provider.pod_tolerations or None,
        "pod_node_selector": provider.pod_node_selector or None,
        "affinity": scheduling.effective_affinity(provider.affinity),
        "storage_class": provider.storage_class or None,
    }
    return json.loads(json.dumps(values))  # as the JSON column gives it back


def for_rebuild(workspace: Workspace) -> dict:
    """The record of a rebuild: the provider's settings now, except the storage class, which
    stays what the kept home volume was made with (unknown if that was never recorded)."""
    values = current(workspace.provider)
    del values["storage_class"]
    if workspace.settings and "storage_class" in workspace.settings:
        values["storage_class"] = workspace.settings["storage_class"]
    return values


def differences(recorded: dict | None, now: dict) -> list[Setting] | None:
    """The settings whose recorded value differs from `now`; None when nothing was recorded."""
    if recorded is None:
        return None
    return [s for s in SETTINGS if s.key in recorded and recorded[s.key] != now.get(s.key)]


def outdated(workspace: Workspace, now: dict | None = None) -> list[Setting] | None:
    """What a rebuild would change in the workspace (None: unknown, never recorded)."""
    found = differences(workspace.settings, now if now is not None else current(workspace.provider))
    return None if found is None else [s for s in found if s.rebuilt]


def labels(settings: Iterable[Setting]) -> str:
    """"access URL, end-to-end encryption and affinity"."""
    names = [s.label for s in settings]
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)


def _count(n: int) -> str:
    return f"{n} workspace{'s' if n != 1 else ''}"


def _verb(n: int, singular: str, plural: str) -> str:
    return singular if n == 1 else plural


@dataclass
class Group:
    """Workspaces of one provider that differ from its settings in one way (or are unknown)."""

    key: str  # a Setting's key, or UNKNOWN
    now: object = None  # the provider's value now
    workspaces: list[Workspace] = field(default_factory=list)

    @property
    def rebuild_helps(self) -> bool:
        return self.key == UNKNOWN or BY_KEY[self.key].rebuilt

    @property
    def sentence(self) -> str:
        n = len(self.workspaces)
        if self.key == UNKNOWN:
            return (f"{_count(n)} {_verb(n, 'was', 'were')} built before settings were recorded: "
                    f"whether {_verb(n, 'it matches', 'they match')} the current settings is unknown")
        return f"{_count(n)} {_still(self.key, self.now, n)}"


def _still(key: str, now, n: int) -> str:
    """What the workspaces built with another value of `key` still do, e.g. "run without it"."""
    run, have, keep = _verb(n, "runs", "run"), _verb(n, "has", "have"), _verb(n, "keeps", "keep")
    if key == "e2e_encryption":
        return f"{run} {'without' if now else 'with'} end-to-end encryption"
    if key == "external_ssh":
        return (f"{have} no external SSH Service" if now
                else f"still {have} an external SSH Service (a LoadBalancer)")
    if key == "storage_class":
        return (f"{keep} a home volume of the previous storage class (a rebuild keeps the home "
                "volume, and so its storage class)")
    return f"{run} with the previous {BY_KEY[key].label}"


def groups(workspaces: Iterable[Workspace], now: dict) -> list[Group]:
    """The workspaces that differ from `now`, grouped by setting in SETTINGS order (one
    workspace may be in several groups); those never recorded come last, as one group."""
    by_key = {s.key: Group(s.key, now.get(s.key)) for s in SETTINGS}
    unknown = Group(UNKNOWN)
    for workspace in workspaces:
        found = differences(workspace.settings, now)
        if found is None:
            unknown.workspaces.append(workspace)
        for setting in found or ():
            by_key[setting.key].workspaces.append(workspace)
    return [g for g in [*by_key.values(), unknown] if g.workspaces]


def saved_notice(changes: dict, workspaces: list[Workspace], now: dict) -> str | None:
    """What the save flash says about the settings that changed: they reach new workspaces
    only, and how many existing ones still run with what they were built with."""
    changed = [s for s in SETTINGS if s.form_field in changes]
    if not changed:
        return None
    unknown = sum(1 for w in workspaces if w.settings is None)
    sentences = []
    for setting in changed:
        n = sum(1 for w in workspaces if w.settings and setting.key in w.settings
                and w.settings[setting.key] != now[setting.key])
        sentence = _for_new(setting, now[setting.key])
        if n:
            sentence += f"; {n} existing {_count(n).split(' ', 1)[1]} {_existing(setting.key, now[setting.key], n)}"
        sentences.append(sentence + ".")
    if unknown:
        sentences.append(f"{_count(unknown)} built before settings were recorded may differ too.")
    if any(w.settings is None or outdated(w, now) for w in workspaces):
        sentences.append("Rebuild them from the provider's page to apply the new settings.")
    return " ".join(sentences)


def _for_new(setting: Setting, now) -> str:
    if setting.key in ("e2e_encryption", "external_ssh"):
        name = "End-to-end encryption" if setting.key == "e2e_encryption" else "External SSH"
        return f"{name} is {'on' if now else 'off'} for new workspaces"
    if setting.key == "storage_class":
        return "The new storage class applies to new home volumes"
    return f"The new {setting.label} applies to new workspaces"


def _existing(key: str, now, n: int) -> str:
    run = _verb(n, "runs", "run")
    if key == "e2e_encryption":
        return f"still {run} {'without' if now else 'with'} it"
    if key == "external_ssh":
        return f"still {_verb(n, 'has', 'have')} {'none' if now else 'theirs'}"
    if key == "storage_class":
        return f"{_verb(n, 'keeps', 'keep')} the previous one (a rebuild keeps the home volume)"
    return f"still {run} with the previous one"


def of_provider(provider: Provider) -> list[Workspace]:
    """The provider's workspaces with their owners, by name (for the groups and the notice)."""
    from sqlalchemy.orm import selectinload

    from ..extensions import db

    return list(db.session.scalars(
        db.select(Workspace).filter_by(provider_id=provider.id)
        .options(selectinload(Workspace.owner)).order_by(Workspace.name, Workspace.id)))
