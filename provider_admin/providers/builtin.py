"""The optional built-in provider: when Provider Admin itself runs inside Kubernetes, a
provider that reaches its own cluster with the pod's service account. It cannot be deleted.

Turned on by naming it: PROVIDER_ADMIN_BUILTIN_PROVIDER=in-cluster (and, optionally,
PROVIDER_ADMIN_BUILTIN_NAMESPACE for its workspaces; else the pod's own namespace).
"""
import logging

from flask import Flask
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from .. import audit, kube
from ..extensions import db
from ..models import Provider

log = logging.getLogger(__name__)


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
    """Register the built-in provider once; later starts leave it (and its edits) alone."""
    existing = db.session.scalar(db.select(Provider).filter_by(is_builtin=True))
    if existing is not None:
        return existing
    if db.session.scalar(db.select(Provider.id).filter_by(name=name)) is not None:
        log.error("The built-in provider was not registered: a provider named %r already exists.", name)
        return None
    provider = Provider(name=name, is_builtin=True, namespace=namespace or _pod_namespace())
    db.session.add(provider)
    try:
        db.session.flush()
        audit.record("provider.create", provider, {"name": name, "namespace": provider.namespace,
                                                   "connection": "in-cluster"},
                     actor="system (PROVIDER_ADMIN_BUILTIN_PROVIDER)")
        db.session.commit()
    except IntegrityError:  # another worker registered it at the same moment
        db.session.rollback()
        return db.session.scalar(db.select(Provider).filter_by(is_builtin=True))
    log.info("Registered the built-in provider %r (namespace %s).", name, provider.namespace)
    return provider


def _pod_namespace() -> str:
    try:
        return kube.in_cluster_connection().namespace
    except kube.NotInClusterError as error:
        log.warning("The built-in provider is registered, but %s", error)
        return "default"
