"""Deploy and bootstrap removal from the provider pages: a rename keeps the provider's identity,
Deploy converges and records what it created, and deleting a provider removes only that."""
import html

import pytest
import sqlalchemy as sa

from provider_admin.checks import check_now
from provider_admin.extensions import db
from provider_admin.kube.health import STALE_BOOTSTRAP
from provider_admin.models import AuditEvent, BootstrapObject, Provider

ROLES = "rbac.authorization.k8s.io/v1/roles"
EVERYTHING = {("Namespace", "", "ws"), ("ServiceAccount", "ws", "provider-admin"),
              ("Secret", "ws", "provider-admin-token"), ("Role", "ws", "provider-admin"),
              ("RoleBinding", "ws", "provider-admin"), ("ClusterRole", "", "provider-admin-ws"),
              ("ClusterRoleBinding", "", "provider-admin-ws"),
              ("ConfigMap", "ws", "provider-admin-marker")}


@pytest.fixture
def admin(actions):
    return actions.login()


def deploy(actions, client, provider) -> str:
    """Press Deploy; the provider's page as shown afterwards (with the flash), unescaped."""
    assert actions.post(f"/manage/providers/{provider.id}/deploy").status_code == 303
    db.session.refresh(provider)
    return html.unescape(client.get(f"/manage/providers/{provider.id}").text)


def delete(actions, client, provider, **form) -> str:
    assert actions.post(f"/manage/providers/{provider.id}/delete", form).status_code == 303
    return html.unescape(client.get("/manage/providers/").text)


def recorded(provider_id: int) -> set[tuple[str, str, str]]:
    rows = db.session.scalars(sa.select(BootstrapObject).filter_by(provider_id=provider_id))
    return {(b.kind, b.namespace, b.name) for b in rows}


def audited(action: str) -> list[dict]:
    return [e.changes for e in db.session.scalars(
        sa.select(AuditEvent).filter_by(action=action).order_by(AuditEvent.id))]


# Identity and Deploy -----------------------------------------------------------------------
def test_a_renamed_provider_stays_ready_and_deploy_updates_the_marker(admin, actions, client,
                                                                      kube_api_tls, kube_provider):
    provider = kube_provider(kube_api_tls)
    deploy(actions, client, provider)
    assert provider.status == "ready", provider.status_message
    form = {"name": "east-1", "cluster_address": provider.cluster_address, "namespace": "ws",
            "ca_certificate": provider.ca_cert, "version": str(provider.version), "affinity": ""}

    assert actions.post(f"/manage/providers/{provider.id}/edit", form).status_code == 303
    db.session.refresh(provider)
    assert (provider.name, provider.status) == ("east-1", "ready"), provider.status_message
    assert check_now(provider).ok and provider.status == "ready"

    page = deploy(actions, client, provider)
    assert "ConfigMap provider-admin-marker in namespace ws: updated" in page
    assert "Role provider-admin in namespace ws: unchanged" in page
    marker = kube_api_tls.get("v1/configmaps", "ws", "provider-admin-marker")["data"]
    assert (marker["provider"], marker["provider-uid"]) == ("east-1", provider.uid)
    assert provider.status == "ready"


def test_a_marker_from_before_uids_is_adopted_then_rewritten_by_deploy(admin, actions, client,
                                                                       kube_api, kube_provider):
    kube_api.deploy_marker("east", legacy=True)
    provider = kube_provider(kube_api)

    check_now(provider)
    assert provider.status == "ready"
    assert provider.status_warnings == [f"{STALE_BOOTSTRAP} (its marker does not record this "
                                        "provider's id yet, so a rename would lose the namespace)."]
    page = deploy(actions, client, provider)

    assert "ConfigMap provider-admin-marker in namespace ws: updated" in page
    assert kube_api.get("v1/configmaps", "ws", "provider-admin-marker")["data"]["provider-uid"] \
        == provider.uid
    assert provider.status == "ready" and not provider.status_warnings
    assert ("ConfigMap", "ws", "provider-admin-marker") not in recorded(provider.id)  # not created


def test_another_providers_marker_is_left_alone_and_conflicts(admin, actions, client, kube_api,
                                                              kube_provider):
    kube_api.deploy_marker("west")
    provider = kube_provider(kube_api)

    page = deploy(actions, client, provider)

    assert ("ConfigMap provider-admin-marker in namespace ws: left alone: not created by "
            "Provider Admin") in page
    assert provider.status == "error"
    assert "Namespace ws is already used by provider west" in provider.status_message


def test_deploy_twice_records_what_it_created_and_audits_each_object(admin, actions, client,
                                                                     kube_api, kube_provider):
    provider = kube_provider(kube_api)

    first = deploy(actions, client, provider)
    second = deploy(actions, client, provider)

    assert "Role provider-admin in namespace ws: created" in first
    assert recorded(provider.id) == EVERYTHING
    assert "Deploy created 8 of them" in second
    assert second.count(": unchanged\n") + second.count(": unchanged<") == 8
    events = audited("provider.deploy")
    assert len(events) == 2
    assert events[0]["objects"][0] == "Namespace ws: created"
    assert len(events[1]["objects"]) == 8
    assert all(line.endswith(": unchanged") and line in second for line in events[1]["objects"])
    assert "Role provider-admin in namespace ws: unchanged" in html.unescape(
        client.get("/manage/audit/").text)


def test_annotations_added_later_reach_the_role_through_deploy(admin, actions, client, kube_api,
                                                               kube_provider):
    kube_api.rbac_role = ("ws", "provider-admin")  # access reviews follow the stored Role
    provider = kube_provider(kube_api)
    deploy(actions, client, provider)
    assert provider.status == "ready", provider.status_message
    provider.service_account_annotations = {"iam.gke.io/gcp-service-account": "ws@example.iam"}
    db.session.commit()

    check_now(provider)
    assert provider.status == "error"
    assert "missing permission: create serviceaccounts in namespace ws" in provider.status_message
    page = html.unescape(client.get(f"/manage/providers/{provider.id}").text)
    assert f"{STALE_BOOTSTRAP} (its Role does not grant create serviceaccounts" in page

    page = deploy(actions, client, provider)

    assert "Role provider-admin in namespace ws: updated" in page
    assert provider.status == "ready", provider.status_message
    assert not provider.status_warnings
    assert ("create", "serviceaccounts", "ws") in kube_api.reviews()
    assert "serviceaccounts" in str(kube_api.get(ROLES, "ws", "provider-admin")["rules"])


def test_what_was_already_there_is_left_alone_and_not_recorded(admin, actions, client, kube_api,
                                                               kube_provider):
    kube_api.put("v1/namespaces", None, "ws", {"kind": "Namespace"})
    kube_api.put("v1/serviceaccounts", "ws", "provider-admin", {"kind": "ServiceAccount"})
    provider = kube_provider(kube_api)

    page = deploy(actions, client, provider)

    assert "Namespace ws: already present: used as it is, not created by Provider Admin" in page
    assert ("ServiceAccount provider-admin in namespace ws: left alone: not created by "
            "Provider Admin") in page
    assert recorded(provider.id) == EVERYTHING - {("Namespace", "", "ws"),
                                                  ("ServiceAccount", "ws", "provider-admin")}
    assert "left alone: not created by Provider Admin" in str(audited("provider.deploy"))


def test_the_deploy_text_says_what_it_grants(admin, client, make_provider):
    provider = make_provider("east", namespace="ws")
    page = html.unescape(client.get(f"/manage/providers/{provider.id}").text)
    assert "exactly the permissions" not in page
    assert "read-only access to the cluster’s nodes and" in page
    assert "storage classes cluster-wide" in page


# Removal with the provider -----------------------------------------------------------------
def test_removal_takes_exactly_what_deploy_created(admin, actions, client, kube_api, kube_provider):
    kube_api.put("v1/namespaces", None, "ws", {"kind": "Namespace"})
    kube_api.put("v1/serviceaccounts", "ws", "provider-admin", {"kind": "ServiceAccount"})
    provider = kube_provider(kube_api)
    deploy(actions, client, provider)
    provider_id = provider.id

    page = delete(actions, client, provider, remove_bootstrap="y")

    assert db.session.get(Provider, provider_id) is None and recorded(provider_id) == set()
    assert "Role provider-admin in namespace ws: removed" in page
    assert kube_api.get(ROLES, "ws", "provider-admin") is None
    assert kube_api.get("v1/configmaps", "ws", "provider-admin-marker") is None
    assert kube_api.get("rbac.authorization.k8s.io/v1/clusterroles", None, "provider-admin-ws") is None
    assert kube_api.get("v1/namespaces", None, "ws") is not None
    assert kube_api.get("v1/serviceaccounts", "ws", "provider-admin") is not None
    removal = audited("provider.delete")[0]["bootstrap removal"]
    assert len(removal) == 6 and all(line.endswith(": removed") for line in removal)


def test_a_created_namespace_holding_someone_elses_pod_survives(admin, actions, client, kube_api,
                                                                kube_provider):
    provider = kube_provider(kube_api)
    deploy(actions, client, provider)
    kube_api.put("v1/pods", "ws", "notebook", {"kind": "Pod"})

    page = delete(actions, client, provider, remove_bootstrap="y")

    reason = "Namespace ws: left: it holds objects that are not this provider's (Pod notebook)"
    assert reason in page
    assert reason in audited("provider.delete")[0]["bootstrap removal"]
    assert kube_api.get("v1/namespaces", None, "ws") is not None
    assert kube_api.get("v1/pods", "ws", "notebook") is not None
    assert kube_api.get(ROLES, "ws", "provider-admin") is None


def test_unticked_nothing_in_the_cluster_is_touched(admin, actions, client, kube_api, kube_provider):
    provider = kube_provider(kube_api)
    deploy(actions, client, provider)
    served = len(kube_api.requests)

    delete(actions, client, provider)

    assert kube_api.requests[served:] == []
    assert kube_api.get(ROLES, "ws", "provider-admin") is not None
    assert audited("provider.delete") == [{"bootstrap removal": "left in the cluster (removal was "
                                                                "not asked for)"}]


def test_an_unreachable_cluster_deletes_the_record_and_says_how_to_finish(
        admin, actions, client, kube_api, kube_provider):
    provider = kube_provider(kube_api)
    deploy(actions, client, provider)
    provider_id = provider.id
    kube_api.stop()

    page = delete(actions, client, provider, remove_bootstrap="y")

    assert db.session.get(Provider, provider_id) is None
    assert "Provider east deleted." in page
    assert "To remove what is left by hand:" in page
    assert "kubectl delete role provider-admin -n ws" in page
    assert "kubectl delete clusterrole provider-admin-ws" in page
    changes = audited("provider.delete")[0]
    assert len(changes["remove by hand"]) == 8
    assert all("could not remove" in line for line in changes["bootstrap removal"])


def test_the_dialog_says_what_removal_takes_and_what_happens_when_unreachable(admin, actions,
                                                                              make_provider):
    provider = make_provider("east", namespace="ws")
    dialog = html.unescape(actions.htmx_get(f"/manage/providers/{provider.id}/delete").text)
    assert "Removes only the objects Deploy created for this provider" in dialog
    assert "the provider is deleted all the same" in dialog
