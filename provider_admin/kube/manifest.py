"""The bootstrap manifest that prepares a namespace for a provider (download or Deploy)."""
from __future__ import annotations

import re

import yaml

from .permissions import (
    MANAGED_BY_LABEL,
    MARKER_GRANTS_KEY,
    MARKER_KEY,
    MARKER_NAME,
    MARKER_UID_KEY,
    UID_LABEL,
    grants,
    rules,
)

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")
PROVIDER_ANNOTATION = "provider-admin.io/provider"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"


def bootstrap_manifest(
    *,
    provider_name: str,
    namespace: str,
    provider_uid: str | None = None,
    service_account_name: str = "provider-admin",
    include_cluster_role: bool = True,
    needs_service_accounts: bool = True,
    needs_services: bool = False,
) -> list[dict]:
    """Kubernetes objects, in the order to apply them; the marker ConfigMap comes last so
    that "deployed" implies everything before it was applied.

    Namespace, ServiceAccount, its token Secret, Role (exactly the permissions workspaces
    need in the namespace), RoleBinding, optionally a ClusterRole + ClusterRoleBinding to read
    StorageClasses and Nodes cluster-wide, and the marker ConfigMap naming the provider. The
    Role grants service accounts only with `needs_service_accounts` (annotations) and services
    only with `needs_services` (external SSH). With
    `provider_uid`, every object carries it as a label and the marker records it with what
    the Role grants: Deploy updates only objects with this label, the check compares the uid.
    """
    for what, value in (("namespace", namespace), ("service account name", service_account_name)):
        if not DNS_LABEL.match(value or ""):
            raise ValueError(f"The {what} {value!r} is not a valid DNS-1123 label.")
    if not provider_name:
        raise ValueError("The provider name is required.")

    sa = service_account_name
    labels = {**MANAGED_BY_LABEL, **({UID_LABEL: provider_uid} if provider_uid else {})}

    def _obj(api_version: str, kind: str, name: str, namespace: str | None = None,
             annotations: dict | None = None) -> dict:
        meta: dict = {"name": name}
        if namespace:
            meta["namespace"] = namespace
        meta["labels"] = dict(labels)
        if annotations:
            meta["annotations"] = annotations
        return {"apiVersion": api_version, "kind": kind, "metadata": meta}

    needs = {"needs_service_accounts": needs_service_accounts, "needs_services": needs_services}
    role_rules = rules(**needs)
    subject = [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}]
    objs = [
        _obj("v1", "Namespace", namespace, annotations={PROVIDER_ANNOTATION: provider_name}),
        _obj("v1", "ServiceAccount", sa, namespace),
        {**_obj("v1", "Secret", f"{sa}-token", namespace, annotations={SA_NAME_ANNOTATION: sa}),
         "type": "kubernetes.io/service-account-token"},
        {**_obj("rbac.authorization.k8s.io/v1", "Role", sa, namespace),
         "rules": [{"apiGroups": [group], "resources": list(resources), "verbs": list(verbs)}
                   for group, resources, verbs in role_rules]},
        {**_obj("rbac.authorization.k8s.io/v1", "RoleBinding", sa, namespace),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": sa},
         "subjects": subject},
    ]
    if include_cluster_role:
        cluster_name = f"{sa}-{namespace}"  # cluster-wide: one per provider namespace
        objs += [
            {**_obj("rbac.authorization.k8s.io/v1", "ClusterRole", cluster_name),
             "rules": [
                 {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"],
                  "verbs": ["get", "list"]},
                 {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]},
             ]},
            {**_obj("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", cluster_name),
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                         "name": cluster_name},
             "subjects": subject},
        ]
    marker = {MARKER_KEY: provider_name}
    if provider_uid:
        marker[MARKER_UID_KEY] = provider_uid
        marker[MARKER_GRANTS_KEY] = grants(**needs)
    objs.append({**_obj("v1", "ConfigMap", MARKER_NAME, namespace,
                        annotations={PROVIDER_ANNOTATION: provider_name}),
                 "data": marker})
    return objs


def to_yaml(objs: list[dict]) -> str:
    """Multi-document YAML for `kubectl apply -f`."""
    return yaml.safe_dump_all(objs, sort_keys=False, explicit_start=True, allow_unicode=True)

