"""/api/v1/users: site admins manage people with a token, under the Users page's rules."""
import pytest

from provider_admin.extensions import db
from provider_admin.models import AuditEvent, Role, User
from provider_admin.tokens import service as tokens

from .tests_api import call


@pytest.fixture
def boss(actions):
    return actions.user(Role.ADMIN.value, username="boss")


@pytest.fixture
def api(app, boss):
    _, secret = tokens.create(boss, "script", 30, read_only=False)
    client = app.test_client()
    return lambda method, path, **kw: call(client, method, path, secret, **kw)


def test_create_change_and_audit(api, make_org):
    make_org("Platform")
    created = api("POST", "/users", json={"email": "Ada@Example.com", "username": "ada",
                                          "password": "long enough", "organizations": ["platform"]})
    assert created.status_code == 201, created.json
    assert created.json["email"] == "ada@example.com" and created.json["role"] == "member"
    assert [o["name"] for o in created.json["organizations"]] == ["Platform"]
    ada = db.session.get(User, created.json["id"])
    assert ada.check_password("long enough") and "password" not in created.text
    url = f"/users/{ada.id}"
    assert api("PATCH", url, json={"role": "manager"}).status_code == 428
    versions = ada.session_version
    changed = api("PATCH", url, json={"role": "manager"}, headers={"If-Match": created.headers["ETag"]})
    assert changed.status_code == 200 and changed.json["role"] == "manager"
    db.session.refresh(ada)
    assert ada.session_version == versions + 1  # a role change ends the user's sessions
    assert api("PATCH", url, json={"role": "admin"}, headers={"If-Match": created.headers["ETag"]}).status_code == 412
    actions = db.session.scalars(db.select(AuditEvent.action).filter_by(target_type="user")
                                 .order_by(AuditEvent.id)).all()
    assert actions == ["user.create", "user.update"]


@pytest.mark.parametrize("body, pointer, words", [
    ({"email": "x@example.com", "username": "x"}, "/password", "Set an initial password."),
    ({"email": "not-mail", "username": "x", "password": "long enough"}, "/email", "Invalid email"),
    ({"email": "boss@example.com", "username": "x", "password": "long enough"}, "/email", "Another user"),
    ({"email": "x@example.com", "username": "x", "password": "long enough", "role": "god"}, "/role",
     "Not a valid choice"),
])
def test_refusals_are_the_pages(api, body, pointer, words):
    response = api("POST", "/users", json=body)
    assert response.status_code == 422
    found = {e["pointer"]: e["detail"] for e in response.json["errors"]}
    assert pointer in found and words in found[pointer], found


def test_an_admin_cannot_lock_themselves_out_nor_leave_no_admin(api, boss):
    tag = api("GET", f"/users/{boss.id}").headers["ETag"]
    response = api("PATCH", f"/users/{boss.id}", json={"active": False}, headers={"If-Match": tag})
    assert response.status_code == 422
    assert {"pointer": "/active", "detail": "You cannot deactivate yourself."} in response.json["errors"]
    db.session.refresh(boss)
    assert boss.active and boss.role == "admin"


def test_only_site_admins(app, actions):
    manager = actions.user(Role.MANAGER.value, username="ops")
    _, secret = tokens.create(manager, "m", 30, read_only=False)
    assert call(app.test_client(), "GET", "/users", secret).status_code == 403
