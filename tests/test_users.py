"""Users: create, edit role and organizations, deactivate, change password, no self-lockout."""
import re

import pytest

from provider_admin.extensions import db
from provider_admin.models import AuditEvent, Role, User

from .conftest import PASSWORD, field_error


@pytest.fixture
def admin(actions):
    return actions.login(Role.ADMIN.value, username="boss")


def checked_organizations(page: str) -> set[str]:
    return set(re.findall(r'<input checked id="organizations-\d+" name="organizations" type="checkbox" '
                          r'value="(\d+)">', page))


def form_data(user: User, **changes) -> dict:
    """What the edit form would post back unchanged, with `changes` applied."""
    data = {"email": user.email, "username": user.username, "password": "", "role": user.role,
            "organizations": [o.id for o in user.organizations]}
    if user.active:
        data["active"] = "y"
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def get_user(username: str) -> User | None:
    db.session.expire_all()
    return db.session.scalar(db.select(User).filter_by(username=username))


def can_sign_in(app, email: str, password: str) -> bool:
    client = app.test_client()
    with app.app_context():  # a browser of its own: nothing carried over from the admin's requests
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        response = client.post("/login", data={"email": email, "password": password, "csrf_token": token})
    return response.status_code == 303


def user_events(action: str) -> list[AuditEvent]:
    return db.session.scalars(db.select(AuditEvent).filter_by(action=action).order_by(AuditEvent.id)).all()


def test_index_lists_users(client, actions, admin, make_org):
    acme = make_org("Acme")
    dev = actions.user(Role.MEMBER.value, username="dev", organizations=[acme])
    dev.active = False
    db.session.commit()
    page = client.get("/manage/users/").get_data(as_text=True)
    row = re.search(rf'<tr id="user-row-{dev.id}">(.*?)</tr>', page, re.S).group(1)
    assert all(text in row for text in ("dev", "dev@example.com", "Member", "Acme", "Deactivated"))
    assert "Site admin" in page and ">Create user</a>" in page


def test_create_form_fields(client, admin, make_org):
    make_org("Acme")
    page = client.get("/manage/users/new").get_data(as_text=True)
    for label in ("Email", "Username", "Password", "Role", "Organizations", "Active"):
        assert re.search(rf"<label[^>]*>\s*(<input[^>]*>\s*)?{label}\s*</label>", page), label
    assert re.findall(r'<option[^>]*value="(\w+)"', page) == ["admin", "manager", "member"]
    assert ">Create user</button>" in page


@pytest.mark.parametrize("htmx", [False, True])
def test_create_with_role_and_organizations(app, actions, admin, make_org, htmx):
    acme, globex, _ = make_org("Acme"), make_org("Globex"), make_org("Initech")
    response = actions.post("/manage/users/new", {
        "email": " Dev@Example.com", "username": "dev", "password": "s3cret-pass", "role": "manager",
        "organizations": [acme.id, globex.id], "active": "y"}, htmx=htmx)
    if htmx:
        assert response.status_code == 200 and response.headers["HX-Redirect"] == "/manage/users/"
    else:
        assert response.status_code == 303 and response.headers["Location"] == "/manage/users/"
    user = get_user("dev")
    assert (user.email, user.role, user.active) == ("dev@example.com", "manager", True)
    assert [o.name for o in user.organizations] == ["Acme", "Globex"]
    assert can_sign_in(app, "dev@example.com", "s3cret-pass")
    (event,) = user_events("user.create")
    assert event.actor == "boss@example.com" and event.target_name == "dev@example.com"
    assert event.changes["role"] == {"from": None, "to": "manager"}
    assert event.changes["organizations"] == {"from": [], "to": ["Acme", "Globex"]}
    assert event.changes["password"] in ("(changed)", "(redacted)")
    assert "s3cret-pass" not in str(event.changes)


@pytest.mark.parametrize("field, value, message", [
    ("email", "BOSS@example.com", "Another user has this email."),
    ("username", "boss", "Another user has this username."),
    ("email", "not-an-email", "Invalid email address."),
    ("username", "Dev User", "Use lowercase letters"),
    ("password", "", "Set an initial password."),
    ("password", "short", "Field must be between 8 and 200 characters long."),
    ("role", "owner", "Not a valid choice."),
])
def test_create_refuses_bad_input_at_the_field(actions, admin, field, value, message):
    data = {"email": "dev@example.com", "username": "dev", "password": "s3cret-pass", "role": "member"}
    data[field] = value
    response = actions.post("/manage/users/new", data)
    assert response.status_code == 422
    assert message in field_error(response.get_data(as_text=True), field)
    assert db.session.scalar(db.select(db.func.count(User.id))) == 1
    assert user_events("user.create") == []


def test_create_error_for_htmx_is_the_fragment(actions, admin):
    response = actions.post("/manage/users/new", {"email": "boss@example.com", "username": "dev",
                                                  "password": "s3cret-pass", "role": "member"}, htmx=True)
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and "<html" not in page
    assert page.lstrip().startswith('<section id="user-form"')


def test_edit_form_shows_the_current_values(client, actions, admin, make_org):
    acme, globex, _ = make_org("Acme"), make_org("Globex"), make_org("Initech")
    dev = actions.user(Role.MANAGER.value, username="dev", organizations=[acme, globex])
    page = client.get(f"/manage/users/{dev.id}/edit").get_data(as_text=True)
    assert 'value="dev@example.com"' in page and 'value="dev"' in page
    assert re.search(r'<option selected value="manager">', page)
    assert checked_organizations(page) == {str(acme.id), str(globex.id)}
    assert re.search(r'<input [^>]*checked id="active"', page)
    assert "Leave empty to keep the current password." in page and ">Update user</button>" in page


@pytest.mark.parametrize("change, role, organizations, changes", [
    ({"role": "manager"}, "manager", ["Acme"], {"role": {"from": "member", "to": "manager"}}),
    ({"organizations": ["Globex"]}, "member", ["Globex"], {"organizations": {"from": ["Acme"], "to": ["Globex"]}}),
], ids=["role", "organizations"])
def test_edit_changes_what_was_changed_and_records_it(actions, admin, make_org, change, role, organizations,
                                                       changes):
    orgs = {org.name: org for org in (make_org("Acme"), make_org("Globex"))}
    dev = actions.user(Role.MEMBER.value, username="dev", organizations=[orgs["Acme"]])
    if "organizations" in change:
        change = {"organizations": [orgs[name].id for name in change["organizations"]]}
    response = actions.post(f"/manage/users/{dev.id}/edit", form_data(dev, **change))
    assert response.status_code == 303
    user = get_user("dev")
    assert user.role == role and [o.name for o in user.organizations] == organizations
    (event,) = user_events("user.update")
    assert event.changes == changes


def test_deactivate_stops_sign_in(app, actions, admin):
    dev = actions.user(Role.MEMBER.value, username="dev")
    assert can_sign_in(app, dev.email, PASSWORD)
    response = actions.post(f"/manage/users/{dev.id}/edit", form_data(dev, active=None))
    assert response.status_code == 303
    assert get_user("dev").active is False
    assert not can_sign_in(app, dev.email, PASSWORD)
    (event,) = user_events("user.update")
    assert event.changes == {"active": {"from": True, "to": False}}


def test_reactivate(app, actions, admin):
    dev = actions.user(Role.MEMBER.value, username="dev")
    dev.active = False
    db.session.commit()
    assert actions.post(f"/manage/users/{dev.id}/edit", form_data(dev, active="y")).status_code == 303
    assert can_sign_in(app, dev.email, PASSWORD)


def test_password_change(app, client, actions, admin):
    dev = actions.user(Role.MEMBER.value, username="dev")
    response = actions.post(f"/manage/users/{dev.id}/edit", form_data(dev, password="brand-new-pass"))
    assert response.status_code == 303
    assert can_sign_in(app, dev.email, "brand-new-pass")
    assert not can_sign_in(app, dev.email, PASSWORD)
    (event,) = user_events("user.update")
    assert event.changes == {"password": "(redacted)"}
    assert "brand-new-pass" not in client.get("/manage/audit/").get_data(as_text=True)


def test_empty_password_keeps_the_current_one(app, actions, admin):
    dev = actions.user(Role.MEMBER.value, username="dev")
    assert actions.post(f"/manage/users/{dev.id}/edit", form_data(dev, role="manager")).status_code == 303
    assert can_sign_in(app, dev.email, PASSWORD)


def test_short_new_password_is_refused(app, actions, admin):
    dev = actions.user(Role.MEMBER.value, username="dev")
    response = actions.post(f"/manage/users/{dev.id}/edit", form_data(dev, password="short"))
    assert response.status_code == 422
    assert "between 8 and 200" in field_error(response.get_data(as_text=True), "password")
    assert can_sign_in(app, dev.email, PASSWORD)


def test_edit_refuses_another_users_email(actions, admin):
    dev = actions.user(Role.MEMBER.value, username="dev")
    response = actions.post(f"/manage/users/{dev.id}/edit", form_data(dev, email="Boss@Example.com"))
    assert response.status_code == 422
    assert "Another user has this email." in field_error(response.get_data(as_text=True), "email")
    assert get_user("dev").email == "dev@example.com"


def test_saving_unchanged_keeps_own_email_and_writes_no_event(actions, admin, make_org):
    dev = actions.user(Role.MEMBER.value, username="dev", organizations=[make_org("Acme")])
    assert actions.post(f"/manage/users/{dev.id}/edit", form_data(dev)).status_code == 303
    assert [o.name for o in get_user("dev").organizations] == ["Acme"]
    assert user_events("user.update") == []


@pytest.mark.parametrize("changes, field, message", [
    ({"role": "manager"}, "role", "You cannot remove your own Site admin role."),
    ({"role": "member"}, "role", "You cannot remove your own Site admin role."),
    ({"active": None}, "active", "You cannot deactivate yourself."),
])
def test_admin_cannot_demote_or_deactivate_themselves(client, actions, admin, changes, field, message):
    response = actions.post(f"/manage/users/{admin.id}/edit", form_data(admin, **changes))
    assert response.status_code == 422
    assert message in field_error(response.get_data(as_text=True), field)
    me = get_user("boss")
    assert (me.role, me.active) == ("admin", True)
    assert user_events("user.update") == []
    assert client.get("/manage/users/").status_code == 200


def test_admin_can_change_their_own_password(app, actions, admin):
    assert actions.post(f"/manage/users/{admin.id}/edit",
                        form_data(admin, password="another-pass")).status_code == 303
    assert can_sign_in(app, "boss@example.com", "another-pass")


def test_admin_can_demote_another_admin(actions, admin):
    other = actions.user(Role.ADMIN.value, username="other")
    assert actions.post(f"/manage/users/{other.id}/edit", form_data(other, role="member")).status_code == 303
    assert get_user("other").role == "member"


def test_a_new_user_is_a_member_unless_another_role_is_chosen(client, admin):
    page = client.get("/manage/users/new").get_data(as_text=True)
    assert re.search(r'<option selected value="member">Member</option>', page), page
