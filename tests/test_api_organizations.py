"""/api/v1/organizations and /api/v1/audit: the Organizations and Audit log pages' rules, with
their audit entries, and If-Match on renames."""
import pytest

from provider_admin.extensions import db
from provider_admin.models import AuditEvent, Role
from provider_admin.tokens import service as tokens

from .tests_api import call


@pytest.fixture
def api(app, actions):
    manager = actions.user(Role.MANAGER.value, username="ops")
    _, secret = tokens.create(manager, "script", 30, read_only=False)
    client = app.test_client()
    return lambda method, path, **kw: call(client, method, path, secret, **kw)


def test_create_rename_and_manage_members_with_audit(api, actions):
    created = api("POST", "/organizations", json={"name": "Platform"})
    assert created.status_code == 201 and created.json["name"] == "Platform"
    url = f"/organizations/{created.json['id']}"
    assert created.headers["Location"].endswith("/api/v1" + url)
    dev = actions.user(Role.MEMBER.value, username="dev")
    added = api("POST", f"{url}/members", json={"user_id": dev.id})
    assert [m["username"] for m in added.json["members"]] == ["dev"]
    assert added.headers["ETag"] != created.headers["ETag"]
    assert api("PATCH", url, json={"name": "Platform team"}).status_code == 428
    stale = api("PATCH", url, json={"name": "Platform team"}, headers={"If-Match": created.headers["ETag"]})
    assert stale.status_code == 412
    renamed = api("PATCH", url, json={"name": "Platform team"}, headers={"If-Match": added.headers["ETag"]})
    assert renamed.status_code == 200 and renamed.json["name"] == "Platform team"
    assert api("DELETE", f"{url}/members/{dev.id}").json["members"] == []
    assert api("DELETE", f"{url}/members/{dev.id}").status_code == 404
    actions_seen = db.session.scalars(db.select(AuditEvent.action).filter_by(target_type="organization")
                                      .order_by(AuditEvent.id)).all()
    assert actions_seen == ["organization.create", "organization.add_member", "organization.update",
                            "organization.remove_member"]
    assert db.session.scalar(db.select(AuditEvent).filter_by(action="organization.create")).actor == "ops@example.com"


def test_names_are_unique_whatever_their_case_as_on_the_page(api, make_org):
    make_org("Acme")
    response = api("POST", "/organizations", json={"name": "ACME"})
    assert response.status_code == 422
    assert response.json["errors"] == [{"pointer": "/name", "detail": 'An organization named "ACME" already exists.'}]
    response = api("POST", "/organizations", json={"name": "no/slashes"})
    assert response.status_code == 422 and response.json["errors"][0]["pointer"] == "/name"


def test_list_and_the_audit_log_read_newest_first_in_pages(api, make_org):
    for name in ("Beta", "Alpha", "Gamma"):
        api("POST", "/organizations", json={"name": name})
    assert [o["name"] for o in api("GET", "/organizations").json["items"]] == ["Alpha", "Beta", "Gamma"]
    first = api("GET", "/audit", query_string={"type": "organization", "limit": 2}).json
    assert [e["target_name"] for e in first["items"]] == ["Gamma", "Alpha"]
    second = api("GET", "/audit", query_string={"type": "organization", "limit": 2,
                                                "cursor": first["next_cursor"]}).json
    assert [e["target_name"] for e in second["items"]] == ["Beta"] and second["next_cursor"] is None


def test_members_cannot_reach_them(app, actions):
    member = actions.user(Role.MEMBER.value, username="dev")
    _, secret = tokens.create(member, "m", 30, read_only=False)
    client = app.test_client()
    for path in ("/organizations", "/audit"):
        assert call(client, "GET", path, secret).status_code == 403
