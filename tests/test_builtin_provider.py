"""The built-in provider: Provider Admin inside Kubernetes reaches its own cluster with its
pod's service account (here: service-account files and environment pointing at a test API)."""
from urllib.parse import urlsplit

import pytest

from provider_admin import create_app
from provider_admin.extensions import db
from provider_admin.kube import connection as kube_connection
from provider_admin.models import AuditEvent, Provider
from provider_admin.providers import builtin

from .kube import TOKEN

# These tests read and change the database directly, in the app's context.
pytestmark = pytest.mark.usefixtures("app_context")


@pytest.fixture
def pod(kube_api_tls, tmp_path, monkeypatch):
    """What Kubernetes gives a pod: KUBERNETES_SERVICE_* variables and service-account files."""
    url = urlsplit(kube_api_tls.url)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", url.hostname)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(url.port))
    (tmp_path / "token").write_text(TOKEN + "\n")
    (tmp_path / "ca.crt").write_text(kube_api_tls.ca_pem)
    (tmp_path / "namespace").write_text("ws")
    monkeypatch.setattr(kube_connection, "SERVICE_ACCOUNT_DIR", str(tmp_path))
    return kube_api_tls


@pytest.fixture
def app_config(pod):
    return {"BUILTIN_PROVIDER": "in-cluster"}


def the_builtin() -> Provider:
    return db.session.scalar(db.select(Provider).filter_by(is_builtin=True))


def test_registered_once_in_the_pods_namespace(app, database_url):
    provider = the_builtin()
    assert (provider.name, provider.namespace, provider.cluster_address) == ("in-cluster", "ws", None)
    assert provider.credentials_encrypted is None  # nothing stored: the pod's token is read per use
    event = db.session.scalar(db.select(AuditEvent).filter_by(action="provider.create"))
    assert event.actor == "system (PROVIDER_ADMIN_BUILTIN_PROVIDER)" and event.actor_id is None
    create_app({**app.config, "BUILTIN_PROVIDER": "in-cluster"})  # the next start: nothing to do
    db.session.expire_all()
    assert db.session.scalars(db.select(Provider.name).filter_by(is_builtin=True)).all() == ["in-cluster"]
    assert db.session.scalar(db.select(db.func.count()).select_from(AuditEvent)) == 1


def test_its_settings_apply_at_every_start_and_are_audited(app):
    provider = the_builtin()
    generation = provider.check_generation
    create_app({**app.config, "BUILTIN_PROVIDER": "home", "BUILTIN_NAMESPACE": "workspaces"})
    db.session.expire_all()
    provider = the_builtin()
    assert (provider.name, provider.namespace) == ("home", "workspaces")
    assert provider.check_generation == generation + 1  # checks of the old namespace are superseded
    event = db.session.scalar(db.select(AuditEvent).filter_by(action="provider.update"))
    assert event.actor == "system (PROVIDER_ADMIN_BUILTIN_PROVIDER)"
    assert event.changes == {"name": {"from": "in-cluster", "to": "home"},
                             "namespace": {"from": "ws", "to": "workspaces"}}
    # Without PROVIDER_ADMIN_BUILTIN_NAMESPACE it goes back to the pod's namespace.
    create_app({**app.config, "BUILTIN_PROVIDER": "home", "BUILTIN_NAMESPACE": None})
    db.session.expire_all()
    assert the_builtin().namespace == "ws"


def test_outside_kubernetes_it_is_not_registered(app, monkeypatch, caplog):
    db.session.delete(the_builtin())
    db.session.commit()
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    create_app({**app.config, "BUILTIN_PROVIDER": "in-cluster"})
    assert the_builtin() is None
    assert "The built-in provider 'in-cluster' is not registered or updated: Not running inside " \
           "Kubernetes: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set." in caplog.text


def test_deploy_and_check_with_the_pods_service_account(app, actions, pod):
    actions.login()
    provider = the_builtin()
    assert actions.post(f"/manage/providers/{provider.id}/deploy").status_code == 303
    marker = pod.get("v1/configmaps", "ws", "provider-admin-marker")["data"]
    assert (marker["provider"], marker["provider-uid"]) == ("in-cluster", provider.uid)
    db.session.refresh(provider)
    assert provider.status == "ready", provider.status_message
    assert all(h.get("Authorization") == f"Bearer {TOKEN}" for h in pod.request_headers())


def test_edit_form_has_no_connection_fields_and_saves(app, actions, client):
    actions.login()
    provider = the_builtin()
    url = f"/manage/providers/{provider.id}/edit"
    page = client.get(url).get_data(as_text=True)
    assert "The built-in provider" in page
    assert 'name="cluster_address"' not in page and 'name="token"' not in page
    response = actions.post(url, {"name": "in-cluster", "namespace": "workspaces", "version": provider.version,
                                  "pod_tolerations": "", "pod_node_selector": "",
                                  "service_account_annotations": "", "affinity": "",
                                  "cluster_address": "https://evil.example", "token": "stolen"})
    assert response.status_code == 303, response.get_data(as_text=True)
    db.session.refresh(provider)
    assert (provider.namespace, provider.cluster_address, provider.credentials_encrypted) == ("workspaces", None, None)


def test_cannot_be_deleted(app, actions, client):
    actions.login()
    provider = the_builtin()
    assert "Delete" not in actions.htmx_get(f"/manage/providers/{provider.id}/menu").get_data(as_text=True)
    actions.post(f"/manage/providers/{provider.id}/delete")
    assert db.session.get(Provider, provider.id) is not None


def test_a_provider_of_the_same_name_is_left_alone(app, make_provider):
    db.session.delete(the_builtin())
    db.session.commit()
    make_provider("taken")
    assert builtin.ensure("taken") is None
    assert db.session.scalar(db.select(Provider).filter_by(is_builtin=True)) is None


def test_outside_kubernetes_the_check_says_so(app, monkeypatch):
    from provider_admin.checks import check_now

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    provider = the_builtin()
    check_now(provider, trigger="manual")
    db.session.refresh(provider)
    assert provider.status == "error" and "Not running inside Kubernetes" in provider.status_message


def test_workers_starting_together_apply_the_settings_once(app, monkeypatch):
    # Another worker applies the same new namespace between this one's read and its write.
    import sqlalchemy as sa

    record = builtin.audit.record

    def another_worker_first(*args, **kwargs):
        other = sa.create_engine(db.engine.url)
        with other.begin() as connection:
            connection.execute(sa.update(Provider).where(Provider.is_builtin.is_(True)).values(
                namespace="workspaces", version=Provider.version + 1))
        other.dispose()
        record(*args, **kwargs)

    monkeypatch.setattr(builtin.audit, "record", another_worker_first)
    provider = builtin.ensure("in-cluster", "workspaces")
    assert provider is not None and provider.namespace == "workspaces"
    assert db.session.scalar(db.select(AuditEvent).filter_by(action="provider.update")) is None
