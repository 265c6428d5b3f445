"""Settings reach the workspaces built after them: each workspace records what it was built
with, the provider page lists those built with older settings, the save flash says so, and a
rebuild applies the current settings while keeping the home volume."""
import html

import pytest
import sqlalchemy as sa

from provider_admin.checks.jobs import job_for
from provider_admin.extensions import db
from provider_admin.kube import object_names
from provider_admin.models import AuditEvent, Workspace
from provider_admin.workspaces import settings
from provider_admin.workspaces.builds import spec_for
from tests.conftest import field_error
from tests.test_workspaces import app_config, created, wait_status, wait_until  # noqa: F401
from tests.test_workspaces import org  # noqa: F401


@pytest.fixture
def kube(kube_api_tls):
    """Over HTTPS: the provider form refuses to send a token to an http:// address."""
    return kube_api_tls


@pytest.fixture
def provider(kube, kube_provider, org):
    kube.deploy_marker("east")
    return kube_provider(kube, organizations=[org], status="ready", access_url="https://old.example.com")


@pytest.fixture
def member(actions, org):
    return actions.login("member", organizations=[org])


def running(actions, provider, org, name="dev"):
    workspace = wait_status(created(actions, provider, org, name=name).id, "running", "failed")
    assert workspace.status == "running", workspace.status_message
    return workspace


def edit(actions, provider, org, **overrides):
    """Save the provider's edit form with `overrides`, as an admin would."""
    db.session.refresh(provider)
    data = {"name": provider.name, "cluster_address": provider.cluster_address,
            "namespace": provider.namespace, "token": "", "version": str(provider.version),
            "organizations": str(org.id), "access_url": provider.access_url or "",
            "pod_tolerations": "", "pod_node_selector": "", "service_account_annotations": "",
            "affinity": "", **({"e2e_encryption": "y"} if provider.e2e_encryption else {}),
            **({"external_ssh": "y"} if provider.external_ssh else {})}
    data.update(overrides)
    response = actions.post(f"/manage/providers/{provider.id}/edit",
                            {k: v for k, v in data.items() if v is not None})
    assert response.status_code == 303, response.text
    db.session.refresh(provider)


def flashes(client) -> str:
    return html.unescape(client.get("/workspaces/").text)


def as_admin(actions, org):
    return actions.login("admin", username="boss", organizations=[org])


# --- The record ----------------------------------------------------------------------------

def test_a_build_records_the_settings_it_was_made_with(member, actions, provider, org):
    workspace = running(actions, provider, org)
    assert workspace.settings == settings.current(provider)
    assert workspace.settings["access_url"] == "https://old.example.com"
    assert workspace.settings["external_ssh"] is False and workspace.settings["affinity"]
    assert settings.outdated(workspace) == []
    page = actions.client.get(f"/workspaces/{workspace.id}").text
    assert 'id="workspace-settings"' not in page


def test_a_record_from_before_settings_were_kept_is_unknown_not_outdated(member, actions, client,
                                                                          provider, org):
    workspace = running(actions, provider, org)
    workspace.settings = None
    db.session.commit()
    assert settings.outdated(workspace) is None
    page = client.get(f"/workspaces/{workspace.id}").text
    assert "Built before settings were recorded" in page and "is unknown" in page
    assert "Built with older settings" not in page and ">Rebuild</button>" in page
    # What it tears down and looks up falls back to the provider's settings now.
    assert spec_for(workspace).access_url == "https://old.example.com"


# --- The provider page and the flash ------------------------------------------------------

def test_the_provider_page_groups_the_workspaces_built_with_older_settings(actions, client, provider, org):
    as_admin(actions, org)
    first, second = running(actions, provider, org, "one"), running(actions, provider, org, "two")
    third = running(actions, provider, org, "three")
    third.settings = None
    db.session.commit()

    edit(actions, provider, org, access_url="https://new.example.com", e2e_encryption="y")

    notice = flashes(client)
    assert "The new access URL applies to new workspaces; 2 existing workspaces still run with the " \
           "previous one." in notice
    assert "End-to-end encryption is on for new workspaces; 2 existing workspaces still run without it." in notice
    assert "1 workspace built before settings were recorded may differ too." in notice
    assert "rerun coder config-ssh" in notice
    page = client.get(f"/manage/providers/{provider.id}").text
    assert "Workspaces built with older settings" in page
    assert "2 workspaces run with the previous access URL" in page
    assert "2 workspaces run without end-to-end encryption" in page
    assert "1 workspace was built before settings were recorded" in page
    for workspace in (first, second, third):
        assert f'href="/workspaces/{workspace.id}"' in page
        assert f'action="/workspaces/{workspace.id}/rebuild"' in page
    workspace_page = " ".join(client.get(f"/workspaces/{first.id}").text.split())
    assert "Built with older settings: access URL and end-to-end encryption of provider east" in workspace_page


def test_a_setting_changed_with_no_workspace_behind_says_new_workspaces_only(actions, client, provider, org):
    as_admin(actions, org)
    edit(actions, provider, org, e2e_encryption="y")
    notice = flashes(client)
    assert "End-to-end encryption is on for new workspaces." in notice
    assert "still run" not in notice and "Rebuild them" not in notice
    assert "Workspaces built with older settings" not in client.get(f"/manage/providers/{provider.id}").text


def test_turning_settings_off_is_said_the_other_way_round(actions, client, kube, kube_provider, org):
    kube.deploy_marker("east")
    provider = kube_provider(kube, organizations=[org], status="ready", e2e_encryption=True,
                             external_ssh=True)
    as_admin(actions, org)
    running(actions, provider, org)
    edit(actions, provider, org, e2e_encryption=None, external_ssh=None)
    notice = flashes(client)
    assert "End-to-end encryption is off for new workspaces; 1 existing workspace still runs with it." in notice
    assert "External SSH is off for new workspaces; 1 existing workspace still has theirs." in notice
    page = client.get(f"/manage/providers/{provider.id}").text
    assert "1 workspace runs with end-to-end encryption" in page
    assert "1 workspace still has an external SSH Service" in page


def test_a_new_storage_class_is_not_promised_to_a_rebuild(actions, client, provider, org):
    as_admin(actions, org)
    workspace = running(actions, provider, org)
    edit(actions, provider, org, storage_class="fast-ssd")
    notice = flashes(client)
    assert "The new storage class applies to new home volumes; 1 existing workspace keeps the previous one" in notice
    assert "Rebuild them" not in notice
    page = client.get(f"/manage/providers/{provider.id}").text
    assert "keeps a home volume of the previous storage class" in page
    assert f'action="/workspaces/{workspace.id}/rebuild"' not in page
    assert settings.outdated(workspace) == []


# --- Rebuild -------------------------------------------------------------------------------

def test_a_rebuild_keeps_the_home_volume_and_recreates_the_pod_with_the_new_settings(
        member, actions, client, provider, org, kube):
    workspace = running(actions, provider, org)
    names = object_names(spec_for(workspace))
    provider.access_url, provider.external_ssh = "https://new.example.com", True
    db.session.commit()

    response = actions.post(f"/workspaces/{workspace.id}/rebuild")

    assert response.status_code == 303 and response.location == f"/workspaces/{workspace.id}"
    workspace = wait_status(workspace.id, "running", "failed")
    assert workspace.status == "running", workspace.status_message
    pod = kube.get("v1/pods", "ws", names["pod"])
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert env["CODER_ACCESS_URL"] == "https://new.example.com" and env["CODER_EXTERNAL_SSH"] == "true"
    assert kube.get("v1/services", "ws", names["service"])["spec"]["type"] == "LoadBalancer"
    assert kube.get("v1/persistentvolumeclaims", "ws", names["pvc"]) is not None
    assert not any(r.startswith("DELETE") and "persistentvolumeclaims" in r for r in kube.requests)
    assert [r for r in kube.requests if r.startswith("DELETE")] == [
        f"DELETE /api/v1/namespaces/ws/pods/{names['pod']}"]
    assert workspace.settings == settings.current(provider)
    log = [line.line for line in workspace.log]
    assert any(line.startswith("Rebuilding on provider east with its current settings (changed: access URL "
                               "and external SSH); the home volume claim") for line in log), log
    event = db.session.scalar(sa.select(AuditEvent).filter_by(action="workspace.rebuild"))
    assert event is not None and "access URL and external SSH" in str(event.changes)
    page = html.unescape(client.get(f"/workspaces/{workspace.id}").text)
    assert "Built with older settings" not in page
    assert "Rebuilding workspace dev with the provider's current settings" in page


def test_the_workspace_page_shows_the_external_ssh_address(member, actions, client, kube,
                                                           kube_provider, org):
    kube.deploy_marker("east")
    provider = kube_provider(kube, organizations=[org], status="ready", external_ssh=True)
    workspace = running(actions, provider, org)
    fragment = actions.htmx_get(f"/workspaces/{workspace.id}/pod").text
    assert "External SSH: waiting for an external address" in fragment
    name = object_names(spec_for(workspace))["service"]
    service = kube.get("v1/services", "ws", name)
    service["status"] = {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}
    kube.put("v1/services", "ws", name, service)
    assert "<code>203.0.113.9:22</code>" in actions.htmx_get(f"/workspaces/{workspace.id}/pod").text


def test_without_external_ssh_no_address_is_looked_for(member, actions, provider, org, kube):
    workspace = running(actions, provider, org)
    assert "External SSH" not in actions.htmx_get(f"/workspaces/{workspace.id}/pod").text
    assert not any("/services/" in r for r in kube.requests if r.startswith("GET"))


def test_who_may_rebuild(actions, client, provider, org, make_org):
    owner = actions.login("member", username="owner", organizations=[org])
    workspace = running(actions, provider, org)
    workspace_id = workspace.id
    actions.login("member", username="stranger", organizations=[org])
    assert actions.post(f"/workspaces/{workspace_id}/rebuild").status_code == 404
    actions.login("manager", username="mgr", organizations=[org])
    assert actions.post(f"/workspaces/{workspace_id}/rebuild").status_code == 403
    assert db.session.scalar(sa.select(AuditEvent).filter_by(action="workspace.rebuild")) is None
    actions.login("admin", username="adm", organizations=[org])
    assert actions.post(f"/workspaces/{workspace_id}/rebuild", htmx=True).headers["HX-Redirect"] == \
        f"/workspaces/{workspace_id}"
    assert wait_status(workspace_id, "running", "failed").status == "running"
    assert db.session.scalar(sa.select(AuditEvent).filter_by(action="workspace.rebuild")).actor_id != owner.id


def test_a_rebuild_needs_the_csrf_token(member, actions, client, provider, org, kube):
    workspace = running(actions, provider, org)
    before = len(kube.requests)
    response = client.post(f"/workspaces/{workspace.id}/rebuild")
    assert response.status_code == 400
    db.session.refresh(workspace)
    assert workspace.status == "running" and len(kube.requests) == before


@pytest.mark.parametrize("state, reason", [
    ({"status": "building"}, "It is building: wait until the build ends."),
    ({"status": "deleting"}, "It is being deleted."),
    ({"delete_requested": True, "status": "building"}, "It is being deleted."),
])
def test_a_busy_workspace_is_not_rebuilt(member, actions, client, provider, org, state, reason):
    workspace = running(actions, provider, org)
    for key, value in state.items():
        setattr(workspace, key, value)
    db.session.commit()
    actions.post(f"/workspaces/{workspace.id}/rebuild")
    assert f"Workspace dev was not rebuilt: {reason}" in flashes(client)
    db.session.refresh(workspace)
    assert workspace.status == state["status"]


def test_a_provider_that_is_not_ready_refuses_but_a_cordoned_one_rebuilds(member, actions, client,
                                                                         provider, org):
    workspace = running(actions, provider, org)
    provider.status = "error"
    db.session.commit()
    actions.post(f"/workspaces/{workspace.id}/rebuild")
    assert "was not rebuilt: Provider east is not ready (Error): a rebuild deletes the pod first" in flashes(client)
    provider.status, provider.cordoned, provider.cordon_reason = "ready", True, "maintenance"
    db.session.commit()
    actions.post(f"/workspaces/{workspace.id}/rebuild")
    assert "Rebuilding workspace dev" in flashes(client)
    assert wait_status(workspace.id, "running", "failed").status == "running"


def test_a_provider_that_moved_is_not_rebuilt_in_its_new_place(member, actions, client, provider, org,
                                                              kube):
    workspace = running(actions, provider, org)
    provider.namespace = "elsewhere"
    db.session.commit()
    before = len(kube.requests)
    actions.post(f"/workspaces/{workspace.id}/rebuild")
    page = flashes(client)
    assert "This workspace was built in namespace ws" in page and "now points to namespace elsewhere" in page
    assert "A rebuild never builds in a new place." in page
    assert len(kube.requests) == before
    db.session.refresh(workspace)
    assert workspace.status == "running"


def test_a_failed_rebuild_keeps_the_old_record_and_offers_a_rebuild_again(member, actions, client, provider,
                                                                         org, kube):
    workspace = running(actions, provider, org)
    old = dict(workspace.settings)
    provider.access_url = "https://new.example.com"
    db.session.commit()
    kube.refuse("POST", "/api/v1/namespaces/ws/pods", 403, "no pods for you")
    actions.post(f"/workspaces/{workspace.id}/rebuild")
    workspace = wait_status(workspace.id, "failed", "running")
    assert workspace.status == "failed" and "Forbidden" in workspace.status_message
    assert workspace.settings == old
    assert kube.get("v1/persistentvolumeclaims", "ws", object_names(spec_for(workspace))["pvc"])
    assert ">Rebuild</button>" in client.get(f"/workspaces/{workspace.id}").text


# --- The service account field -------------------------------------------------------------

def test_a_service_account_with_annotations_is_refused_at_the_field(actions, provider, org):
    as_admin(actions, org)
    db.session.refresh(provider)
    response = actions.post(f"/manage/providers/{provider.id}/edit", {
        "name": "east", "cluster_address": provider.cluster_address, "namespace": "ws", "token": "",
        "version": str(provider.version), "organizations": str(org.id), "service_account": "workspaces",
        "service_account_annotations": '{"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/x"}',
        "pod_tolerations": "", "pod_node_selector": "", "affinity": ""})
    assert response.status_code == 422
    assert "Leave this empty while service account annotations are set" in field_error(response.text,
                                                                                      "service_account")


def test_the_check_leaves_an_unused_service_account_alone(app, provider):
    provider.service_account = "workspaces"
    assert job_for(provider, full=True).service_account == "workspaces"
    provider.service_account_annotations = {"a.example.com/x": "y"}
    assert job_for(provider, full=True).service_account is None
    assert settings.current(provider)["service_account"] is None
    provider.external_ssh = True
    assert job_for(provider, full=True).needs_services is True


def test_the_preview_shows_the_ssh_service_only_with_external_ssh(actions, org):
    as_admin(actions, org)
    fields = {"name": "east", "namespace": "ws", "pod_tolerations": "", "pod_node_selector": "",
              "service_account_annotations": "", "affinity": "{}"}
    without = actions.post("/manage/providers/preview", fields).text
    assert "kind: Pod" in without and "kind: Service\n" not in html.unescape(without)
    shown = html.unescape(actions.post("/manage/providers/preview", {**fields, "external_ssh": "y"}).text)
    assert "kind: Service\n" in shown and "type: LoadBalancer" in shown
