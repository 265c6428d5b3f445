"""What a member may see of workspaces and providers, and deleting a workspace while it builds."""
import re

import pytest
import sqlalchemy as sa

from provider_admin.extensions import db
from provider_admin.models import Workspace
from tests.conftest import field_error
from tests.test_workspace_identity import org, provider  # noqa: F401  (fixtures)
from tests.test_workspaces import _objects, created, wait_status, wait_until, workspace_form


@pytest.fixture
def app_config():
    return {"CHECK_TIMEOUT": 5.0}


def without_tokens(text: str) -> str:
    """A page minus what differs between any two responses (the CSRF token)."""
    return re.sub(r'("X-CSRFToken": "|name="csrf_token"[^>]*value=")[^"]+', r"\1", text)


# --- Deleting while it builds ---------------------------------------------------------------

def test_a_deletion_asked_for_during_the_build_is_queued_and_runs_after_it(actions, client, provider, org,
                                                                         kube_api):
    actions.login("member", organizations=[org])
    kube_api.slow("post /api/v1/namespaces/ws/pods", 1.5)
    workspace = created(actions, provider, org)
    assert workspace.status == "building"
    dialog = actions.htmx_get(f"/workspaces/{workspace.id}/delete").text
    assert "the deletion is queued and starts by itself when the build finishes" in dialog

    response = actions.post(f"/workspaces/{workspace.id}/delete")

    assert response.status_code == 303 and response.headers["Location"].endswith(f"/workspaces/{workspace.id}")
    page = client.get(response.headers["Location"]).text
    assert page.count("Deletion queued: it starts when the build finishes.") == 2  # flash and page
    assert ">Delete</a>" not in page
    db.session.expire_all()
    assert db.session.get(Workspace, workspace.id).status == "building"  # not cut short
    workspace_id = workspace.id
    wait_until(lambda: db.session.get(Workspace, workspace_id) is None, 20)
    assert [o for kind in ("v1/pods", "v1/persistentvolumeclaims") for o in _objects(kube_api, kind)] == []
    assert any(r.startswith("POST /api/v1/namespaces/ws/pods") for r in kube_api.requests)  # it was built first
    landed = client.get(f"/workspaces/{workspace_id}?deleting=1", follow_redirects=True)
    assert landed.request.path == "/workspaces/" and "The workspace was deleted." in landed.text


def test_a_second_delete_while_one_runs_says_why(actions, provider, org, kube_api):
    actions.login("member", organizations=[org])
    workspace_id = wait_status(created(actions, provider, org).id, "running").id
    kube_api.slow("delete /api/v1/namespaces/ws/pods", 3.0)  # the second click lands meanwhile, even on a busy machine
    assert actions.post(f"/workspaces/{workspace_id}/delete").status_code == 303

    again = actions.post(f"/workspaces/{workspace_id}/delete", htmx=True)

    assert again.status_code == 409 and "It is being deleted already" in again.text
    assert wait_status(workspace_id) is None


# --- Least visibility -----------------------------------------------------------------------

@pytest.fixture
def others(actions, provider, org):
    """A workspace of another member; then a member of the same organization signs in."""
    actions.login("member", username="alice", organizations=[org])
    workspace = wait_status(created(actions, provider, org).id, "running")
    actions.client.post("/logout", data={"csrf_token": actions.token()})
    actions.login("member", username="bob", organizations=[org])
    return workspace


@pytest.mark.parametrize("method, path", [
    ("get", "/workspaces/{}"), ("get", "/workspaces/{}?deleting=1"), ("htmx", "/workspaces/{}"),
    ("get", "/workspaces/{}/pod"), ("get", "/workspaces/{}/delete"), ("post", "/workspaces/{}/delete"),
    ("get", "/workspaces/{}/forget"), ("post", "/workspaces/{}/forget"),
])
def test_someone_elses_workspace_answers_like_a_missing_one(actions, others, method, path):
    missing = others.id + 1000

    def ask(workspace_id):
        url = path.format(workspace_id)
        response = {"get": actions.client.get, "htmx": actions.htmx_get, "post": actions.post}[method](url)
        return response.status_code, without_tokens(response.text).replace(f"/workspaces/{workspace_id}", "/ID")

    assert ask(others.id) == ask(missing)
    assert ask(missing)[0] == 404
    assert "The workspace was deleted." not in actions.client.get("/workspaces/").text


def test_the_form_offers_a_member_only_their_organizations_providers(actions, provider, org, make_org,
                                                                  kube_api, kube_provider):
    theirs = kube_provider(kube_api, name="secret-west", organizations=[make_org("Other")], status="ready")
    actions.login("member", organizations=[org])

    page = actions.client.get("/workspaces/new").text

    assert "secret-west" not in page and "east" in page
    refusals = [actions.post("/workspaces/new", {**workspace_form(provider, org), "provider": str(provider_id)})
                for provider_id in (theirs.id, theirs.id + 1000)]
    assert [r.status_code for r in refusals] == [422, 422]
    assert field_error(refusals[0].text, "provider") == field_error(refusals[1].text, "provider") != ""
    assert without_tokens(refusals[0].text) == without_tokens(refusals[1].text)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Workspace)) == 0


def test_managers_still_see_why_other_providers_cannot_be_chosen(actions, provider, org, make_org,
                                                               kube_api, kube_provider):
    kube_provider(kube_api, name="west", organizations=[make_org("Other")], status="ready")
    actions.login("manager", organizations=[org])
    assert "west — not available to this organization" in actions.client.get("/workspaces/new").text


def test_the_provider_filter_reveals_nothing_to_a_member(actions, others, provider):
    pages = {without_tokens(actions.client.get(url).text)
             for url in ("/workspaces/", f"/workspaces/?provider={provider.id}", "/workspaces/?provider=99999")}
    assert len(pages) == 1 and "On workspace provider" not in pages.pop()
