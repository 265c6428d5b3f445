"""Providers as the API sends them: each provider's JSON encoded once, and kept while what it
is made of stays the same (in the app's caches, caches.py).

A provider's JSON is made of the columns of its row that the API shows, its workspace count
and its organizations. The key it is kept under is those columns as the database sends them
(before any conversion: JSON as text and, on SQLite, times as text), the workspace count and
display_version, which the database itself bumps whenever the provider joins or leaves an
organization or one of its organizations is renamed (migration 0010). So any change, made by
any process, by a service or by hand in SQL, makes a new key: nothing needs invalidating, and
a kept JSON can only be served for the very values it was made from. Old keys fall out of the
LRU. The JSON holds nothing per caller: who may read it is decided before (areas.py).
"""
from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import Text, bindparam, cast, func, select, type_coerce
from sqlalchemy.types import NullType

from ..caches import caches
from ..extensions import db
from ..kube import scheduling
from ..models import Organization, Provider, Workspace, provider_organizations

_TABLE = Provider.__table__
_JSON_COLUMNS = ("pod_tolerations", "pod_node_selector", "service_account_annotations", "affinity",
                 "status_warnings")
_SHOWN = ("id", "uid", "name", "is_builtin", "cluster_address", "namespace", "ca_cert", "kubeconfig_context",
          "credentials_kind", "token_expires_at", "e2e_encryption", "external_ssh", "access_url", "storage_class",
          "service_account", *_JSON_COLUMNS, "cordoned", "cordon_reason", "version", "status", "status_category",
          "status_message", "kube_version", "last_checked_at", "last_ready_at", "created_at", "updated_at",
          "display_version")

_COUNT = select(func.count()).select_from(Workspace).where(Workspace.provider_id == Provider.id) \
    .correlate(Provider).scalar_subquery()


def _as_stored(name: str):
    column = _TABLE.c[name]
    if name in _JSON_COLUMNS:  # text on every database, so that the key is hashable
        return cast(column, Text).label(name)
    return type_coerce(column, NullType()).label(name)


# The statement to filter, order and page: every shown column as stored, and the workspace count.
STORED = select(*(_as_stored(name) for name in _SHOWN), type_coerce(_COUNT, NullType()).label("workspaces"))
_ONE = STORED.where(Provider.id == bindparam("provider_id"))


def encoded(rows: Sequence) -> list[str]:
    """The JSON of each provider of `rows` (from STORED), kept or made now."""
    kept, keys = caches().api_providers, [tuple(row) for row in rows]
    found = kept.get_many(keys)
    missing = {index: key for index, (key, value) in enumerate(zip(keys, found)) if value is None}
    if missing:
        organizations = _organizations_of([rows[index].id for index in missing])
        for index, key in missing.items():
            row = rows[index]
            seen_at, names = organizations.get(row.id, (None, []))
            found[index] = json.dumps(_representation(_decoded(row), row.workspaces, names))
            if seen_at == row.display_version:  # read at the same version as the row
                kept.keep(key, lambda value=found[index]: value)
    return found


def one(provider_id: int) -> tuple[str, int] | None:
    """The JSON of one provider and its version (the ETag), or None when there is none."""
    row = db.session.connection().execute(_ONE, {"provider_id": provider_id}).first()
    return None if row is None else (encoded([row])[0], row.version)


def _organizations_of(ids: list[int]) -> dict[int, tuple[int, list[dict]]]:
    """Per provider: its display_version as this statement saw it, and its organizations by name."""
    found: dict[int, tuple[int, list[dict]]] = {}
    rows = db.session.connection().execute(
        select(Provider.id, Provider.display_version, Organization.id.label("organization_id"), Organization.name)
        .outerjoin(provider_organizations, provider_organizations.c.provider_id == Provider.id)
        .outerjoin(Organization, Organization.id == provider_organizations.c.organization_id)
        .where(Provider.id.in_(ids)).order_by(Provider.id, Organization.name))
    for row in rows:
        _, names = found.setdefault(row.id, (row.display_version, []))
        if row.organization_id is not None:
            names.append({"id": row.organization_id, "name": row.name})
    return found


def _decoded(row) -> dict:
    """The row's values as the ORM would give them (what the stored text means)."""
    decoders = _decoders()
    values = row._asdict()
    for name, decode in decoders.items():
        if values[name] is not None:
            values[name] = decode(values[name])
    return values


_DECODERS: dict[str, dict] = {}


def _decoders() -> dict:
    dialect = db.session.get_bind().dialect
    if dialect.name not in _DECODERS:
        decoders = {}
        for name in _SHOWN:
            if name in _JSON_COLUMNS:
                decoders[name] = json.loads
            elif (process := _TABLE.c[name].type.dialect_impl(dialect).result_processor(dialect, None)) is not None:
                decoders[name] = process
        _DECODERS[dialect.name] = decoders
    return _DECODERS[dialect.name]


def _representation(provider: dict, workspaces: int, organizations: list[dict]) -> dict:
    """The Provider schema's fields (provider_schemas.Provider), built by hand."""
    stamp = _iso
    return {
        "id": provider["id"], "uid": provider["uid"], "name": provider["name"], "builtin": provider["is_builtin"],
        "cluster_address": provider["cluster_address"], "namespace": provider["namespace"],
        "ca_certificate": provider["ca_cert"], "kubeconfig_context": provider["kubeconfig_context"],
        "credentials": {"kind": provider["credentials_kind"],
                        "token_expires_at": stamp(provider["token_expires_at"])},
        "organizations": organizations,
        "e2e_encryption": provider["e2e_encryption"], "external_ssh": provider["external_ssh"],
        "access_url": provider["access_url"], "storage_class": provider["storage_class"],
        "service_account": provider["service_account"], "pod_tolerations": provider["pod_tolerations"],
        "pod_node_selector": provider["pod_node_selector"],
        "service_account_annotations": provider["service_account_annotations"],
        "affinity": scheduling.DEFAULT_AFFINITY if provider["affinity"] is None else provider["affinity"],
        "cordoned": provider["cordoned"],
        "cordon_reason": provider["cordon_reason"], "workspaces": workspaces, "version": provider["version"],
        "status": {"state": provider["status"], "category": provider["status_category"],
                   "message": provider["status_message"], "warnings": provider["status_warnings"] or [],
                   "kube_version": provider["kube_version"], "last_checked_at": stamp(provider["last_checked_at"]),
                   "last_ready_at": stamp(provider["last_ready_at"])},
        "created_at": stamp(provider["created_at"]), "updated_at": stamp(provider["updated_at"]),
    }


def _iso(value) -> str | None:
    return None if value is None else value.isoformat()
