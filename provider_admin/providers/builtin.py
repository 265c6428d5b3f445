"""The optional built-in provider: when Provider Admin itself runs inside Kubernetes, a
provider that reaches its own cluster with the pod's service account. It cannot be deleted.

Turned on by naming it: PROVIDER_ADMIN_BUILTIN_PROVIDER=in-cluster (and, optionally,
PROVIDER_ADMIN_BUILTIN_NAMESPACE for its workspaces; else the pod's own namespace).
"""
import logging

from flask import Flask
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm.exc import StaleDataError

from .. import audit, kube
from ..extensions import db
from ..models import Provider

log = logging.getLogger(__name__)
ACTOR = "system (PROVIDER_ADMIN_BUILTIN_PROVIDER)"  # who the audit log says made its changes


def init_app(app: Flask) -> None:
    name = (app.config.get("BUILTIN_PROVIDER") or "").strip()
    if not name:
        return
    with app.app_context():
        try:
            ensure(name, app.config.get("BUILTIN_NAMESPACE"))
        except (OperationalError, ProgrammingError):  # no schema yet, e.g. `flask db` commands
            db.session.rollback()
            log.warning("The built-in provider was not registered: the database is not migrated yet.")
        finally:
            db.session.remove()


def ensure(name: str, namespace: str | None = None) -> Provider | None:
    """Register the built-in provider, or bring it to the settings at every start: its name
    and namespace follow PROVIDER_ADMIN_BUILTIN_PROVIDER and PROVIDER_ADMIN_BUILTIN_NAMESPACE.

    Outside Kubernetes nothing is registered (a provider that could never work); one
    registered before is left as it is.
    """
    try:
        pod = kube.in_cluster_connection()
    except kube.NotInClusterError as error:
        log.warning("The built-in provider %r is not registered or updated: %s", name, error)
        return None
    namespace = namespace or pod.namespace
    existing = db.session.scalar(db.select(Provider).filter_by(is_builtin=True))
    if _name_taken(name):
        log.error("The built-in provider was not %s: a provider named %r already exists.",
                  "renamed" if existing else "registered", name)
        if existing is None:
            return None
        name = existing.name
    if existing is None:
        return _register(name, namespace)
    changes = {field: {"from": getattr(existing, field), "to": value}
               for field, value in (("name", name), ("namespace", namespace))
               if getattr(existing, field) != value}
    if changes:
        existing.name, existing.namespace = name, namespace
        audit.record("provider.update", existing, changes, actor=ACTOR)
        try:
            db.session.commit()
        except StaleDataError:  # another worker starting at the same moment applied them
            db.session.rollback()
            return db.session.scalar(db.select(Provider).filter_by(is_builtin=True))
        log.info("The built-in provider follows its settings: %s.", ", ".join(
            f"{field} {change['from']} -> {change['to']}" for field, change in changes.items()))
    return existing


def _name_taken(name: str) -> bool:
    """Another, ordinary provider has this name."""
    return db.session.scalar(db.select(Provider.id).filter(
        Provider.name == name, Provider.is_builtin.is_(False))) is not None


def _register(name: str, namespace: str) -> Provider | None:
    provider = Provider(name=name, is_builtin=True, namespace=namespace)
    db.session.add(provider)
    try:
        db.session.flush()
        audit.record("provider.create", provider, {"name": name, "namespace": namespace,
                                                   "connection": "in-cluster"}, actor=ACTOR)
        db.session.commit()
    except IntegrityError:  # another worker registered it at the same moment
        db.session.rollback()
        return db.session.scalar(db.select(Provider).filter_by(is_builtin=True))
    log.info("Registered the built-in provider %r (namespace %s).", name, namespace)
    return provider
