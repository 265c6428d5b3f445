"""/api/v1/workspaces: a member creates, follows and deletes their own workspace with a token,
under the rules of the Workspaces pages; someone else's workspace answers like a missing one."""
import pytest

from provider_admin.extensions import db
from provider_admin.models import Role, Workspace
from provider_admin.tokens import service as tokens

from .test_workspaces import app_config, org, provider, wait_status  # noqa: F401  (fixtures)
from .tests_api import call


def api_of(app, user, read_only=False):
    _, secret = tokens.create(user, "script", 30, read_only=read_only)
    client = app.test_client()
    return lambda method, path, **kw: call(client, method, path, secret, **kw)


def test_a_member_builds_follows_and_deletes_a_workspace(app, actions, org, provider, kube_api):
    member = actions.user(Role.MEMBER.value, username="dev", organizations=[org])
    api = api_of(app, member)
    response = api("POST", "/workspaces", json={"name": "box", "provider": "EAST", "memory": "2Gi"})
    assert response.status_code == 201, response.json
    workspace_id = response.json["id"]
    assert response.json["status"] == "building" and response.json["memory"] == "2Gi"
    assert response.json["organization"] == "Acme" and response.json["cpu"] == "2"  # the form's default
    assert wait_status(workspace_id, "running", "failed").status == "running"
    shown = api("GET", f"/workspaces/{workspace_id}").json
    assert shown["status"] == "running" and any("Pod" in line["line"] for line in shown["log"])
    assert [w["name"] for w in api("GET", "/workspaces").json["items"]] == ["box"]
    again = api("POST", "/workspaces", json={"name": "box", "provider": "east"})
    assert again.status_code == 422
    assert {"pointer": "/name", "detail": "You already have a workspace with this name."} in again.json["errors"]
    deleted = api("DELETE", f"/workspaces/{workspace_id}")
    assert deleted.status_code == 202 and deleted.json == {"outcome": "started"}
    assert wait_status(workspace_id, "failed") is None


@pytest.mark.parametrize("body, pointer, words", [
    ({"name": "box", "provider": "west"}, "/provider", "Not a valid choice"),
    ({"name": "box", "provider": "east", "organization": "Globex"}, "/organization", "Choose one of your"),
    ({"name": "Box!", "provider": "east"}, "/name", "lowercase"),
    ({"name": "box", "provider": "east", "cpu": "lots"}, "/cpu", "millicores"),
])
def test_refusals_are_the_forms(app, actions, org, provider, make_org, make_provider, body, pointer, words):
    make_org("Globex")
    make_provider("west")  # not allowlisted for Acme
    member = actions.user(Role.MEMBER.value, username="dev", organizations=[org])
    response = api_of(app, member)("POST", "/workspaces", json=body)
    assert response.status_code == 422
    found = {e["pointer"]: e["detail"] for e in response.json["errors"]}
    assert pointer in found and words in found[pointer], found
    assert db.session.scalar(db.select(db.func.count()).select_from(Workspace)) == 0


def test_a_cordoned_provider_takes_no_new_workspace(app, actions, org, provider):
    provider.cordoned, provider.cordon_reason = True, "upgrade"
    db.session.commit()
    member = actions.user(Role.MEMBER.value, username="dev", organizations=[org])
    response = api_of(app, member)("POST", "/workspaces", json={"name": "box", "provider": "east"})
    assert response.status_code == 422
    assert "east cannot take new workspaces" in {e["pointer"]: e["detail"] for e in response.json["errors"]}["/provider"]


def test_someone_elses_workspace_is_missing_and_managers_see_but_do_not_delete(app, actions, org, provider):
    alice = actions.user(Role.MEMBER.value, username="alice", organizations=[org])
    bob = actions.user(Role.MEMBER.value, username="bob", organizations=[org])
    manager = actions.user(Role.MANAGER.value, username="ops")
    workspace = Workspace(name="dev", owner=alice, organization=org, provider=provider, image="busybox",
                          cpu="1", memory="1Gi", disk="1Gi", status="running", namespace="ws")
    db.session.add(workspace)
    db.session.commit()
    as_bob, as_manager = api_of(app, bob), api_of(app, manager)
    assert as_bob("GET", f"/workspaces/{workspace.id}").status_code == 404
    assert as_bob("DELETE", f"/workspaces/{workspace.id}").status_code == 404
    assert as_bob("GET", "/workspaces").json["items"] == []
    assert as_manager("GET", f"/workspaces/{workspace.id}").json["owner"] == "alice@example.com"
    assert [w["name"] for w in as_manager("GET", "/workspaces", query_string={"provider_id": provider.id})
            .json["items"]] == ["dev"]
    assert as_manager("DELETE", f"/workspaces/{workspace.id}").status_code == 403


def test_deleting_while_it_builds_is_queued_and_a_second_deletion_is_409(app, actions, org, provider):
    member = actions.user(Role.MEMBER.value, username="dev", organizations=[org])
    workspace = Workspace(name="dev", owner=member, organization=org, provider=provider, image="busybox",
                          cpu="1", memory="1Gi", disk="1Gi", status="building", namespace="ws")
    db.session.add(workspace)
    db.session.commit()
    api = api_of(app, member)
    assert api("DELETE", f"/workspaces/{workspace.id}").json == {"outcome": "queued"}
    workspace.status = "deleting"
    db.session.commit()
    response = api("DELETE", f"/workspaces/{workspace.id}")
    assert response.status_code == 409 and response.json["title"] == "Deletion under way"


def test_reads_carry_an_etag_of_their_body_and_answer_304_while_it_holds(app, actions, org, provider, kube_api):
    member = actions.user(Role.MEMBER.value, username="dev", organizations=[org])
    api = api_of(app, member)
    workspace_id = api("POST", "/workspaces", json={"name": "box", "provider": "east"}).json["id"]
    assert wait_status(workspace_id, "running", "failed").status == "running"
    first = api("GET", f"/workspaces/{workspace_id}")
    tag = first.headers["ETag"]
    assert tag.startswith('W/"') and first.status_code == 200
    unchanged = api("GET", f"/workspaces/{workspace_id}", headers={"If-None-Match": tag})
    assert unchanged.status_code == 304 and unchanged.data == b"" and unchanged.headers["ETag"] == tag
    listed = api("GET", "/workspaces")
    assert api("GET", "/workspaces", headers={"If-None-Match": listed.headers["ETag"]}).status_code == 304
    workspace = db.session.get(Workspace, workspace_id)
    workspace.status_message = "Restarted by the cluster"
    db.session.commit()
    changed = api("GET", f"/workspaces/{workspace_id}", headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.json["status_message"] == "Restarted by the cluster"
    assert changed.headers["ETag"] != tag
    assert api("GET", "/workspaces", headers={"If-None-Match": listed.headers["ETag"]}).status_code == 200
