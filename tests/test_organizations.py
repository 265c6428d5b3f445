"""Organizations: create, rename, members, and the audit events each change writes."""
import re

import pytest

from provider_admin.extensions import db
from provider_admin.models import AuditEvent, Organization, Role, User

from .conftest import field_error


@pytest.fixture
def admin(actions):
    return actions.login(Role.ADMIN.value, username="boss")


def events(action: str) -> list[AuditEvent]:
    return db.session.scalars(db.select(AuditEvent).filter_by(action=action).order_by(AuditEvent.id)).all()


def org_names() -> list[str]:
    return db.session.scalars(db.select(Organization.name).order_by(Organization.name)).all()


def test_index_lists_organizations_with_counts(client, actions, admin, make_org, make_provider):
    member = actions.user(Role.MEMBER.value)
    acme = make_org("Acme", members=[admin, member])
    make_org("Globex")
    make_provider("east", organizations=[acme])
    html = client.get("/manage/organizations/").get_data(as_text=True)
    row = re.search(rf'<tr id="organization-row-{acme.id}">(.*?)</tr>', html, re.S).group(1)
    assert ">Acme</a>" in row
    assert re.findall(r'<td class="num">(\d+)</td>', row) == ["2", "1", "0"]
    assert "Globex" in html and ">Create organization</button>" in html


def test_index_fragment_for_htmx(actions, admin, make_org):
    make_org("Acme")
    response = actions.htmx_get("/manage/organizations/")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "HX-Request" in response.headers["Vary"]
    assert html.lstrip().startswith('<section id="organization-list">') and "<html" not in html


@pytest.mark.parametrize("htmx", [False, True])
def test_create(client, actions, admin, htmx):
    response = actions.post("/manage/organizations/", {"name": "Acme Corp"}, htmx=htmx)
    if htmx:
        assert response.status_code == 200 and response.headers["HX-Redirect"] == "/manage/organizations/"
    else:
        assert response.status_code == 303 and response.headers["Location"] == "/manage/organizations/"
    assert org_names() == ["Acme Corp"]
    assert "Organization Acme Corp created." in client.get("/manage/organizations/").get_data(as_text=True)
    (event,) = events("organization.create")
    assert (event.actor, event.actor_id, event.target_type, event.target_name) == (
        "boss@example.com", admin.id, "organization", "Acme Corp")
    assert event.changes == {"name": "Acme Corp"}


@pytest.mark.parametrize("name", ["Acme", "acme", "ACME", "Acme ", "aCmE"])
def test_create_refuses_a_duplicate_name_case_insensitively(actions, admin, make_org, name):
    make_org("Acme")
    response = actions.post("/manage/organizations/", {"name": name})
    assert response.status_code == 422
    assert "already exists" in field_error(response.get_data(as_text=True), "name")
    assert org_names() == ["Acme"]
    assert events("organization.create") == []


@pytest.mark.parametrize("name, message", [
    ("", "This field is required."),
    ("-acme", "Use letters, digits"),
    ("acme/ops", "Use letters, digits"),
    ("x" * 65, "Field cannot be longer than 64 characters."),
])
def test_create_validates_the_name(actions, admin, name, message):
    response = actions.post("/manage/organizations/", {"name": name})
    assert response.status_code == 422
    assert message in field_error(response.get_data(as_text=True), "name")
    assert org_names() == []


def test_create_error_for_htmx_is_the_fragment(actions, admin, make_org):
    make_org("Acme")
    response = actions.post("/manage/organizations/", {"name": "acme"}, htmx=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and "<html" not in html
    assert 'id="organization-list"' in html and "already exists" in field_error(html, "name")


def test_edit_page(client, actions, admin, make_org):
    member = actions.user(Role.MEMBER.value, username="dev")
    outsider = actions.user(Role.MEMBER.value, username="newbie")
    org = make_org("Acme", members=[member])
    html = client.get(f"/manage/organizations/{org.id}").get_data(as_text=True)
    assert "<h1>Acme</h1>" in html and 'value="Acme"' in html
    assert 'aria-label="Remove dev"' in html
    options = re.findall(r'<option value="(\d+)">([^<]+)</option>', html)
    assert (str(outsider.id), "newbie (newbie@example.com)") in options
    assert str(member.id) not in [value for value, _ in options]


@pytest.mark.parametrize("htmx", [False, True])
def test_rename(actions, admin, make_org, htmx):
    org = make_org("Acme")
    response = actions.post(f"/manage/organizations/{org.id}", {"name": "Acme Labs"}, htmx=htmx)
    assert response.status_code == (200 if htmx else 303)
    assert (response.headers.get("HX-Redirect") if htmx else response.headers["Location"]) == \
        f"/manage/organizations/{org.id}"
    assert org_names() == ["Acme Labs"]
    (event,) = events("organization.update")
    assert event.target_id == org.id and event.actor == "boss@example.com"
    assert event.changes == {"name": {"from": "Acme", "to": "Acme Labs"}}


def test_rename_to_a_change_of_case_is_allowed(actions, admin, make_org):
    org = make_org("Acme")
    assert actions.post(f"/manage/organizations/{org.id}", {"name": "ACME"}).status_code == 303
    assert org_names() == ["ACME"]


def test_rename_refuses_another_organizations_name(actions, admin, make_org):
    org = make_org("Acme")
    make_org("Globex")
    response = actions.post(f"/manage/organizations/{org.id}", {"name": "globex"})
    assert response.status_code == 422
    assert 'An organization named "globex" already exists.' in field_error(response.get_data(as_text=True), "name")
    assert org_names() == ["Acme", "Globex"]
    assert events("organization.update") == []


def test_rename_without_change_writes_nothing(actions, admin, make_org):
    org = make_org("Acme")
    assert actions.post(f"/manage/organizations/{org.id}", {"name": "Acme"}).status_code == 200
    assert events("organization.update") == []


@pytest.mark.parametrize("htmx", [False, True])
def test_add_member(actions, admin, make_org, htmx):
    org = make_org("Acme")
    dev = actions.user(Role.MEMBER.value, username="dev")
    response = actions.post(f"/manage/organizations/{org.id}/members", {"user_id": dev.id}, htmx=htmx)
    assert response.status_code == (200 if htmx else 303)
    db.session.expire_all()
    assert [m.username for m in db.session.get(Organization, org.id).members] == ["dev"]
    (event,) = events("organization.add_member")
    assert (event.target_name, event.changes) == ("Acme", {"member": "dev@example.com"})


@pytest.mark.parametrize("who", ["member", "inactive", "missing", "empty"])
def test_add_member_refuses_users_not_on_offer(actions, admin, make_org, who):
    dev = actions.user(Role.MEMBER.value, username="dev")
    gone = actions.user(Role.MEMBER.value, username="gone")
    gone.active = False
    db.session.commit()
    org = make_org("Acme", members=[dev])
    user_id = {"member": dev.id, "inactive": gone.id, "missing": 999, "empty": ""}[who]
    response = actions.post(f"/manage/organizations/{org.id}/members", {"user_id": user_id})
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "user_id")
    db.session.expire_all()
    assert [m.username for m in db.session.get(Organization, org.id).members] == ["dev"]
    assert events("organization.add_member") == []


@pytest.mark.parametrize("htmx", [False, True])
def test_remove_member(actions, admin, make_org, htmx):
    dev = actions.user(Role.MEMBER.value, username="dev")
    other = actions.user(Role.MEMBER.value, username="other")
    org = make_org("Acme", members=[dev, other])
    response = actions.post(f"/manage/organizations/{org.id}/members/{dev.id}/remove", htmx=htmx)
    assert response.status_code == (200 if htmx else 303)
    db.session.expire_all()
    assert [m.username for m in db.session.get(Organization, org.id).members] == ["other"]
    assert db.session.get(User, dev.id) is not None  # removed from the organization, not deleted
    (event,) = events("organization.remove_member")
    assert event.changes == {"member": "dev@example.com"}


def test_remove_member_without_token_changes_nothing(client, actions, admin, make_org):
    dev = actions.user(Role.MEMBER.value, username="dev")
    org = make_org("Acme", members=[dev])
    assert client.post(f"/manage/organizations/{org.id}/members/{dev.id}/remove").status_code == 400
    db.session.expire_all()
    assert [m.username for m in db.session.get(Organization, org.id).members] == ["dev"]


def test_remove_non_member_writes_nothing(actions, admin, make_org):
    dev = actions.user(Role.MEMBER.value, username="dev")
    org = make_org("Acme")
    assert actions.post(f"/manage/organizations/{org.id}/members/{dev.id}/remove").status_code == 303
    assert events("organization.remove_member") == []


def test_manager_can_manage_organizations(actions, make_org):
    actions.login(Role.MANAGER.value, username="mgr")
    dev = actions.user(Role.MEMBER.value, username="dev")
    assert actions.post("/manage/organizations/", {"name": "Acme"}).status_code == 303
    org = db.session.scalar(db.select(Organization))
    assert actions.post(f"/manage/organizations/{org.id}/members", {"user_id": dev.id}).status_code == 303
    assert {e.actor for e in db.session.scalars(db.select(AuditEvent))} == {"mgr@example.com"}
