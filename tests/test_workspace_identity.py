"""A workspace's objects in the cluster are its own: named from a uid that is never reused,
found where they were built, and never taken over, deleted or shown for another workspace."""
import pytest
import sqlalchemy as sa

from provider_admin.extensions import db
from provider_admin.kube import WORKSPACE_UID_LABEL as UID_LABEL
from provider_admin.models import AuditEvent, Provider, Workspace
from tests.conftest import TEST_DATABASE_URL, field_error
from tests.test_providers import edit_form
from tests.test_workspaces import _objects, created, wait_status

KINDS = ("v1/pods", "v1/persistentvolumeclaims", "v1/serviceaccounts")


@pytest.fixture
def app_config():
    return {"CHECK_TIMEOUT": 1.0}


@pytest.fixture
def kube_api(kube_api_tls):
    """Over https: the provider form accepts only https cluster addresses."""
    return kube_api_tls


@pytest.fixture
def org(make_org):
    return make_org("Acme")


@pytest.fixture
def provider(kube_api, kube_provider, org):
    kube_api.deploy_marker("east")
    return kube_provider(kube_api, organizations=[org], status="ready")


def edit(provider, **changes) -> dict:
    """The provider's edit form as stored, with `changes`."""
    return edit_form(provider, ca_certificate=provider.ca_cert,
                     organizations=[str(o.id) for o in provider.organizations], **changes)


def sign_out(actions):
    actions.client.post("/logout", data={"csrf_token": actions.token()})


def cluster_objects(kube_api) -> list[dict]:
    return [obj for kind in KINDS for obj in _objects(kube_api, kind)]


def test_a_reused_id_never_takes_over_another_users_objects(actions, provider, org, kube_api):
    # As found: Alice's dev could not be deleted while the cluster was down, an admin removed
    # the record, SQLite handed its id out again, and Bob created dev.
    actions.login("member", username="alice", organizations=[org])
    alice = wait_status(created(actions, provider, org).id, "running")
    alice_id, alice_uid = alice.id, alice.uid
    kube_api.stop()
    actions.post(f"/workspaces/{alice_id}/delete")
    assert wait_status(alice_id, "failed").status == "failed"
    kube_api.start()
    sign_out(actions)
    actions.login("admin")
    assert actions.post(f"/workspaces/{alice_id}/forget").status_code == 303
    alices_objects = cluster_objects(kube_api)
    assert len(alices_objects) == 2 and all(o["metadata"]["labels"][UID_LABEL] == alice_uid
                                            for o in alices_objects)
    sign_out(actions)
    actions.login("member", username="bob", organizations=[org])

    bob = wait_status(created(actions, provider, org).id, "running", "failed")

    if not TEST_DATABASE_URL:
        assert bob.id == alice_id  # the id was handed out again, as it was found
    assert bob.status == "running", bob.status_message
    assert not any("keeping it" in line.line or "using it" in line.line for line in bob.log)
    assert bob.object_base != f"ws-{bob.id}-dev" and bob.uid != alice_uid
    now = cluster_objects(kube_api)
    assert [o for o in now if o["metadata"]["labels"][UID_LABEL] == alice_uid] == alices_objects
    bobs_pod = next(o for o in _objects(kube_api, "v1/pods") if o["metadata"]["labels"][UID_LABEL] == bob.uid)
    env = {e["name"]: e["value"] for e in bobs_pod["spec"]["containers"][0]["env"]}
    assert env["CODER_USER_EMAIL"] == "bob@example.com"

    bob_id = bob.id
    actions.post(f"/workspaces/{bob_id}/delete")
    assert wait_status(bob_id) is None
    assert cluster_objects(kube_api) == alices_objects  # deleting Bob's never touches Alice's data


def test_a_foreign_object_under_the_workspaces_name_fails_the_build_and_stays(actions, provider, org,
                                                                            kube_api):
    actions.login("member", organizations=[org])
    kube_api.slow("post /api/v1/namespaces/ws/persistentvolumeclaims", 0.5)  # time to plant it
    workspace = created(actions, provider, org)
    pvc = f"{workspace.object_base}-home"
    kube_api.put("v1/persistentvolumeclaims", "ws", pvc, {"metadata": {"name": pvc}, "spec": {"owner": "alice"}})

    workspace = wait_status(workspace.id, "running", "failed")

    assert workspace.status == "failed"
    assert workspace.status_message.startswith(
        f"PersistentVolumeClaim {pvc} already exists and belongs to something else; nothing was changed.")
    assert kube_api.get("v1/persistentvolumeclaims", "ws", pvc)["spec"] == {"owner": "alice"}
    assert _objects(kube_api, "v1/pods") == []
    workspace_id = workspace.id
    actions.post(f"/workspaces/{workspace_id}/delete")
    assert wait_status(workspace_id) is None  # its own objects are gone; the foreign one stays
    assert kube_api.get("v1/persistentvolumeclaims", "ws", pvc)["spec"] == {"owner": "alice"}
    event = db.session.scalar(sa.select(AuditEvent).filter_by(action="workspace.delete"))
    assert event.changes == {"left_in_cluster": [f"PersistentVolumeClaim {pvc}"], "reason": "not this workspace's"}


def test_existing_workspaces_keep_their_names_and_are_torn_down_by_their_id_label(actions, provider, org,
                                                                                  kube_api):
    owner = actions.login("member", organizations=[org])
    legacy = Workspace(name="old", owner=owner, organization=org, provider=provider, image="x", cpu="1",
                       memory="1Gi", disk="1Gi", status="running", legacy_labels=True)
    db.session.add(legacy)
    db.session.flush()
    legacy.object_base = f"ws-{legacy.id}-old"  # as the migration stores it
    db.session.commit()
    labels = {"com.coder.workspace.id": str(legacy.id)}
    for kind, name in (("v1/pods", f"ws-{legacy.id}-old"), ("v1/persistentvolumeclaims", f"ws-{legacy.id}-old-home")):
        kube_api.put(kind, "ws", name, {"metadata": {"name": name, "labels": labels}})

    legacy_id = legacy.id
    actions.post(f"/workspaces/{legacy_id}/delete")

    assert wait_status(legacy_id) is None
    assert cluster_objects(kube_api) == []


# --- Where it was built ------------------------------------------------------------------------

@pytest.fixture
def running(actions, provider, org):
    actions.login("member", username="alice", organizations=[org])
    workspace = wait_status(created(actions, provider, org).id, "running")
    sign_out(actions)
    actions.login("admin")
    return workspace


@pytest.mark.parametrize("change, field, label", [
    ({"namespace": "elsewhere"}, "namespace", "Namespace"),
    ({"cluster_address": "https://k8s.invalid:6443", "token": "new-token"}, "cluster_address", "Cluster address"),
])
def test_the_place_cannot_change_while_workspaces_run_there(actions, provider, running, change, field, label):
    before = (provider.namespace, provider.cluster_address, provider.version)

    response = actions.post(f"/manage/providers/{provider.id}/edit", edit(provider, **change))

    assert response.status_code == 422
    assert field_error(response.text, field) == (
        f"{label} cannot change while 1 workspace runs here: alice/dev. Their objects stay where they "
        "were built: delete the workspaces first, or add a provider for the new place.")
    db.session.expire_all()
    assert (provider.namespace, provider.cluster_address, provider.version) == before


def test_the_help_at_the_fields_says_so(actions, provider):
    actions.login("admin")
    page = actions.client.get(f"/manage/providers/{provider.id}/edit").text
    assert page.count("Cannot change while the provider has workspaces") == 2


def test_a_new_token_for_the_same_address_is_allowed(actions, provider, running):
    response = actions.post(f"/manage/providers/{provider.id}/edit", edit(provider, token="rotated"))
    assert response.status_code == 303, field_error(response.text, "token")


def test_without_workspaces_the_place_can_change(actions, provider):
    actions.login("admin")
    response = actions.post(f"/manage/providers/{provider.id}/edit", edit(
        provider, namespace="elsewhere", cluster_address="https://k8s.invalid:6443", token="t"))
    assert response.status_code == 303
    db.session.expire_all()
    assert provider.namespace == "elsewhere"


def test_a_workspace_whose_provider_points_elsewhere_is_not_deleted_there(actions, client, provider, running,
                                                                        kube_api):
    # A provider moved by another way than its form (an old row, a direct database change).
    db.session.execute(sa.update(Provider).where(Provider.id == provider.id).values(namespace="elsewhere"))
    db.session.commit()
    workspace_id = running.id
    pod = actions.htmx_get(f"/workspaces/{workspace_id}/pod").text
    assert "was built in namespace ws" in pod and "deleted" not in pod

    actions.post(f"/workspaces/{workspace_id}/delete")
    workspace = wait_status(workspace_id, "failed")

    assert workspace.status_message.startswith(
        f"This workspace was built in namespace ws at {kube_api.url}, but provider east now points to "
        f"namespace elsewhere at {kube_api.url}. Nothing was deleted")
    assert len(cluster_objects(kube_api)) == 2
    assert not any(r.startswith("DELETE") for r in kube_api.requests)
    page = client.get(f"/workspaces/{workspace_id}?deleting=1", follow_redirects=True)
    assert "The workspace was deleted." not in page.text and "Nothing was deleted" in page.text
