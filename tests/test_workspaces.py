"""Workspaces: who may create them where, the build into the cluster, deletion, preview."""
import time
from datetime import datetime, timedelta, timezone

import kmock
import kubernetes_validate
import pytest
import sqlalchemy as sa

from provider_admin.extensions import db
from provider_admin.models import AuditEvent, BuildLogLine, Workspace
from tests.conftest import field_error
from tests.seed import ANNOTATIONS, ANNOTATIONS_JSON


@pytest.fixture
def app_config():
    return {"CHECK_TIMEOUT": 2.0}


@pytest.fixture
def org(make_org):
    return make_org("Acme")


@pytest.fixture
def member(actions, org):
    return actions.login("member", organizations=[org])


@pytest.fixture
def provider(kube_api, kube_provider, org):
    kube_api.deploy_marker("east")
    return kube_provider(kube_api, organizations=[org], status="ready",
                         storage_class="fast-ssd",
                         service_account_annotations=ANNOTATIONS)


def workspace_form(provider, org, **overrides):
    data = {"name": "dev", "organization": str(org.id), "provider": str(provider.id),
            "image": "codercom/enterprise-base:ubuntu", "cpu": "2", "memory": "4Gi", "disk": "10Gi"}
    data.update(overrides)
    return data


def wait_until(predicate, seconds=15.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        db.session.expire_all()
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def wait_status(workspace_id, *statuses):
    wait_until(lambda: (w := db.session.get(Workspace, workspace_id)) is None or w.status in statuses)
    return db.session.get(Workspace, workspace_id)


def created(actions, provider, org, **overrides):
    response = actions.post("/workspaces/new", workspace_form(provider, org, **overrides))
    assert response.status_code == 303, response.text
    return db.session.scalar(sa.select(Workspace).order_by(Workspace.id.desc()))


def test_build_creates_the_objects_with_the_providers_scheduling(member, actions, provider, org,
                                                                  kube_api):
    workspace = wait_status(created(actions, provider, org).id, "running", "failed")
    assert workspace.status == "running", workspace.status_message
    sa_obj = next(o for o in _objects(kube_api, "v1/serviceaccounts"))
    assert sa_obj["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == (
        "arn:aws:iam::123456789123:role/coder-role-" + member.email)
    pvc = next(o for o in _objects(kube_api, "v1/persistentvolumeclaims"))
    assert pvc["spec"]["storageClassName"] == "fast-ssd"
    pod = next(o for o in _objects(kube_api, "v1/pods"))
    assert pod["metadata"]["labels"]["com.coder.resource"] == "true"
    assert pod["spec"]["serviceAccountName"] == sa_obj["metadata"]["name"]
    assert pod["spec"]["affinity"]["podAffinity"]  # the default affinity
    log = [line.line for line in workspace.log]
    assert any("coder-role-" + member.email in line for line in log), log
    for obj in (sa_obj, pvc, pod):  # what the API server received is valid Kubernetes
        kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)


def _objects(kube_api, resource):
    import kmock

    key = kmock.resource(resource)
    objs = kube_api._call(lambda: dict(kube_api.k.objects.items()))
    return [dict(o.raw) for (res, _ns, _name), o in objs.items() if res == key and not o.deleted]


def test_the_live_log_stops_polling_when_the_build_is_done(member, actions, provider, org):
    workspace = wait_status(created(actions, provider, org).id, "running", "failed")
    fragment = actions.htmx_get(f"/workspaces/{workspace.id}")
    assert fragment.status_code == 286
    assert "Build log" in fragment.text and 'hx-trigger="every 1s"' not in fragment.text


@pytest.mark.parametrize("change, message", [
    ({"cordoned": True, "cordon_reason": "upgrade"}, "cordoned: upgrade"),
    ({"status": "error"}, "not ready (Error)"),
    ({"status": "pending"}, "not ready (Pending)"),
])
def test_ineligible_providers_are_explained_and_refused(member, actions, provider, org, change,
                                                        message):
    for key, value in change.items():
        setattr(provider, key, value)
    db.session.commit()
    page = actions.client.get("/workspaces/new").text
    assert f"east — {message}" in page
    response = actions.post("/workspaces/new", workspace_form(provider, org))
    assert response.status_code == 422
    assert "east cannot take new workspaces" in response.text
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Workspace)) == 0


def test_a_member_cannot_use_an_organization_they_are_not_in(member, actions, provider, make_org):
    other = make_org("Other")
    provider.organizations.append(other)
    db.session.commit()
    response = actions.post("/workspaces/new", workspace_form(provider, other))
    assert response.status_code == 422
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Workspace)) == 0


@pytest.mark.parametrize("field, value", [
    ("name", "Dev Box"), ("cpu", "two"), ("memory", "4 gigs"), ("disk", ""), ("image", "UPPER CASE"),
])
def test_bad_workspace_input_is_shown_at_the_field(member, actions, provider, org, field, value):
    response = actions.post("/workspaces/new", workspace_form(provider, org, **{field: value}))
    assert response.status_code == 422
    assert f'id="{field}-error"' in response.text


def test_a_second_workspace_of_the_same_name_is_refused_at_the_field(member, actions, provider, org):
    first = wait_status(created(actions, provider, org).id, "running", "failed")
    for htmx in (False, True):
        response = actions.post("/workspaces/new", workspace_form(provider, org), htmx=htmx)
        assert response.status_code == 422
        assert field_error(response.text, "name") == "You already have a workspace with this name."
    assert db.session.scalars(sa.select(Workspace.id)).all() == [first.id]


@pytest.mark.parametrize("role, may_delete", [("manager", False), ("admin", True)])
def test_who_may_delete_someone_elses_workspace(actions, client, provider, org, role, may_delete):
    actions.login("member", username="alice", organizations=[org])
    workspace = wait_status(created(actions, provider, org).id, "running", "failed")
    client.post("/logout", data={"csrf_token": actions.token()})
    actions.login(role, organizations=[org])
    page = client.get(f"/workspaces/{workspace.id}").text
    assert (">Delete</a>" in page) is may_delete
    assert actions.htmx_get(f"/workspaces/{workspace.id}/delete").status_code == (200 if may_delete else 403)


def test_the_record_of_a_workspace_that_did_not_fail_stays(actions, provider, org):
    actions.login("admin", organizations=[org])
    workspace = wait_status(created(actions, provider, org).id, "running")
    response = actions.post(f"/workspaces/{workspace.id}/forget", htmx=True)
    assert response.status_code == 409 and '<dialog id="dialog"' in response.text
    assert db.session.scalar(sa.select(Workspace.status).filter_by(id=workspace.id)) == "running"


def test_members_see_only_their_own_workspaces(actions, client, provider, org, kube_api):
    alice = actions.login("member", username="alice", organizations=[org])
    workspace = wait_status(created(actions, provider, org).id, "running", "failed")
    client.post("/logout", data={"csrf_token": actions.token()})
    actions.login("member", username="bob", organizations=[org])
    assert "dev" not in client.get("/workspaces/").text.split("<main")[1]
    assert client.get(f"/workspaces/{workspace.id}").status_code == 404
    assert workspace.owner_id == alice.id


def test_a_failing_step_leaves_nothing_behind(member, actions, provider, org, kube_api):
    kube_api.respond("post /api/v1/namespaces/ws/pods", 403, "pods is forbidden: nope")
    workspace = wait_status(created(actions, provider, org).id, "running", "failed")
    assert workspace.status == "failed"
    assert "forbidden" in workspace.status_message
    assert _objects(kube_api, "v1/pods") == []  # the refused pod was never made
    assert _objects(kube_api, "v1/persistentvolumeclaims") == []
    assert _objects(kube_api, "v1/serviceaccounts") == []


def test_delete_removes_the_objects_and_the_record(member, actions, provider, org, kube_api):
    workspace_id = wait_status(created(actions, provider, org).id, "running", "failed").id
    response = actions.post(f"/workspaces/{workspace_id}/delete")
    assert response.status_code == 303
    wait_until(lambda: db.session.scalar(sa.select(Workspace.id).filter_by(id=workspace_id)) is None)
    assert _objects(kube_api, "v1/pods") == [] and _objects(kube_api, "v1/persistentvolumeclaims") == []


def test_when_the_cluster_is_gone_an_admin_can_remove_the_record(actions, client, provider, org,
                                                                   kube_api):
    admin = actions.login("admin", organizations=[org])
    workspace = wait_status(created(actions, provider, org).id, "running", "failed")
    kube_api.stop()
    actions.post(f"/workspaces/{workspace.id}/delete")
    workspace = wait_status(workspace.id, "failed")
    assert workspace.status == "failed"
    dialog = actions.htmx_get(f"/workspaces/{workspace.id}/forget")
    assert '<dialog id="dialog"' in dialog.text and "Pod " in dialog.text
    workspace_id = workspace.id
    response = actions.post(f"/workspaces/{workspace_id}/forget")
    assert response.status_code == 303
    assert db.session.scalar(sa.select(Workspace.id).filter_by(id=workspace_id)) is None
    event = db.session.scalar(sa.select(AuditEvent).filter_by(action="workspace.forget"))
    assert event.actor_id == admin.id


def test_members_cannot_remove_records(member, actions, provider, org):
    workspace = wait_status(created(actions, provider, org).id, "running", "failed")
    assert actions.post(f"/workspaces/{workspace.id}/forget").status_code == 403


def test_provider_delete_and_allowlist_guards_count_real_workspaces(actions, client, provider, org,
                                                                    kube_api):
    actions.login("admin", organizations=[org])
    wait_status(created(actions, provider, org).id, "running", "failed")
    assert actions.post(f"/manage/providers/{provider.id}/delete").status_code == 422


def test_preview_shows_the_pod_and_service_account_as_typed(actions, provider):
    actions.login("admin", email="ada@example.com")
    response = actions.post("/manage/providers/preview", {
        "name": "east", "namespace": "ws", "storage_class": "fast-ssd",
        "service_account_annotations": ANNOTATIONS_JSON,
        "pod_node_selector": '{"disktype": "ssd"}', "affinity": "{}",
    }, htmx=True)
    assert response.status_code == 200
    assert "kind: ServiceAccount" in response.text and "kind: Pod" in response.text
    assert "coder-role-ada@example.com" in response.text
    assert "disktype: ssd" in response.text and "podAffinity" not in response.text


def test_preview_explains_what_to_fix(actions):
    actions.login("admin")
    response = actions.post("/manage/providers/preview", {"pod_tolerations": "[{"}, htmx=True)
    assert "Pod tolerations" in response.text and "Correct these" in response.text


def _set_pod_status(kube_api, workspace, status):
    pod = next(o for o in _objects(kube_api, "v1/pods"))
    kube_api.put("v1/pods", "ws", pod["metadata"]["name"], {**pod, "status": status})


def test_the_page_shows_why_the_pod_is_not_scheduled(member, actions, provider, org, kube_api):
    workspace = wait_status(created(actions, provider, org).id, "running", "failed")
    page = actions.client.get(f"/workspaces/{workspace.id}").text
    assert f'hx-get="/workspaces/{workspace.id}/pod"' in page
    _set_pod_status(kube_api, workspace, {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector <b>."}]})

    state = actions.htmx_get(f"/workspaces/{workspace.id}/pod").text

    assert "Pod phase <strong>Pending</strong>" in state
    assert "Not scheduled: Unschedulable 0/3 nodes are available: 3 node(s) didn&#39;t match Pod&#39;s " \
           "node affinity/selector &lt;b&gt;." in state


@pytest.mark.parametrize("status, shown", [
    ({"phase": "Running", "conditions": [{"type": "PodScheduled", "status": "True"},
                                         {"type": "Ready", "status": "True"}]}, "Pod phase <strong>Running</strong>, ready."),
    ({"phase": "Pending", "containerStatuses": [{"name": "dev", "state": {"waiting": {
        "reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]},
     "Container dev is waiting: ImagePullBackOff: Back-off pulling image"),
])
def test_the_pod_state_follows_the_cluster(member, actions, provider, org, kube_api, status, shown):
    workspace = wait_status(created(actions, provider, org).id, "running", "failed")
    _set_pod_status(kube_api, workspace, status)
    assert shown in actions.htmx_get(f"/workspaces/{workspace.id}/pod").text


def test_the_pod_state_of_a_gone_pod_or_cluster_is_explained(member, actions, provider, org, kube_api):
    workspace = wait_status(created(actions, provider, org).id, "running", "failed")
    pod = next(o for o in _objects(kube_api, "v1/pods"))
    kube_api._call(kube_api.k.objects.__delitem__, (kmock.resource("v1/pods"), "ws", pod["metadata"]["name"]))
    assert "it was deleted from the cluster" in actions.htmx_get(f"/workspaces/{workspace.id}/pod").text
    kube_api.stop()
    gone = actions.htmx_get(f"/workspaces/{workspace.id}/pod")
    assert gone.status_code == 200 and "The pod’s state is unknown" in gone.text


def test_only_the_owner_and_managers_see_the_pod(actions, client, provider, org, make_org):
    owner = actions.login("member", organizations=[org])
    workspace = wait_status(created(actions, provider, org).id, "running", "failed")
    actions.login("member", organizations=[org])
    assert client.get(f"/workspaces/{workspace.id}/pod").status_code == 404
    assert owner.id == workspace.owner_id


@pytest.mark.parametrize("status, what", [("building", "build"), ("deleting", "deletion")])
def test_a_build_cut_off_by_a_restart_turns_failed_and_can_be_deleted(member, actions, provider, org,
                                                                       status, what):
    long_ago = datetime.now(timezone.utc) - timedelta(hours=1)
    workspace = Workspace(name="stuck", owner=member, organization=org, provider=provider, image="x",
                          cpu="1", memory="1Gi", disk="1Gi", status=status)
    db.session.add(workspace)
    db.session.flush()
    db.session.add(BuildLogLine(workspace_id=workspace.id, at=long_ago, line="Building"))
    db.session.commit()
    db.session.execute(sa.update(Workspace).where(Workspace.id == workspace.id).values(updated_at=long_ago))
    db.session.commit()

    page = actions.client.get(f"/workspaces/{workspace.id}").text

    assert f"The {what} stopped without finishing" in page
    db.session.expire_all()
    assert db.session.get(Workspace, workspace.id).status == "failed"
    assert actions.post(f"/workspaces/{workspace.id}/delete").status_code == 303


def test_a_running_build_is_not_taken_for_a_stuck_one(member, actions, provider, org):
    workspace = Workspace(name="fresh", owner=member, organization=org, provider=provider, image="x",
                          cpu="1", memory="1Gi", disk="1Gi", status="building")
    db.session.add(workspace)
    db.session.commit()
    actions.client.get(f"/workspaces/{workspace.id}")
    db.session.expire_all()
    assert db.session.get(Workspace, workspace.id).status == "building"


def test_admins_list_the_workspaces_of_one_provider(actions, client, provider, org, kube_api, kube_provider):
    other = kube_provider(kube_api, name="west", organizations=[org], status="ready")
    admin = actions.login("admin", organizations=[org])
    for name, where in (("on-east", provider), ("on-west", other)):
        db.session.add(Workspace(name=name, owner=admin, organization=org, provider=where, image="x",
                                 cpu="1", memory="1Gi", disk="1Gi", status="running"))
    db.session.commit()
    page = client.get(f"/manage/providers/{provider.id}").text
    assert f'href="/workspaces/?provider={provider.id}">1</a>' in page
    listed = client.get(f"/workspaces/?provider={provider.id}").text
    assert "on-east" in listed and "on-west" not in listed and "On workspace provider" in listed
    assert client.get("/workspaces/?provider=9999").status_code == 404


def test_a_deletion_that_ends_before_the_next_page_loads_goes_to_the_list(member, actions, client, provider, org):
    workspace_id = wait_status(created(actions, provider, org).id, "running", "failed").id
    response = actions.post(f"/workspaces/{workspace_id}/delete")
    assert response.status_code == 303 and response.headers["Location"].endswith("?deleting=1")
    wait_until(lambda: db.session.scalar(sa.select(Workspace.id).filter_by(id=workspace_id)) is None)
    landed = client.get(response.headers["Location"], follow_redirects=True)
    assert landed.request.path == "/workspaces/" and "The workspace was deleted." in landed.text
    assert client.get(f"/workspaces/{workspace_id}").status_code == 404  # without the flag: nothing to say
