"""Password sign-in turned off: the sign-in page offers only single sign-on, a password is
refused, and the break-glass command lets a site admin in once, for a few minutes."""
import re
from datetime import timedelta

import pytest

from provider_admin.extensions import db
from provider_admin.models import AuditEvent, Role, User, utcnow

from .conftest import PASSWORD
from .oidc import idp, sso_config  # noqa: F401  (fixture)


@pytest.fixture
def app_config(database_url, idp):
    return sso_config(idp, PASSWORD_SIGN_IN=False, OIDC_BUTTON_LABEL="Sign in with Company SSO")


@pytest.fixture
def admin(actions):
    return actions.user(Role.ADMIN.value, email="root@example.com", username="root")


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def break_glass(runner, *args):
    return runner.invoke(args=["users", "break-glass", *args])


def link_path(output: str) -> str:
    found = re.search(r"http://localhost:5000(/login/break-glass/\S+)", output)
    assert found, output
    return found.group(1)


def test_the_sign_in_page_offers_only_single_sign_on(client, admin):
    page = client.get("/login").get_data(as_text=True)
    assert "Sign in with Company SSO" in page
    assert 'name="password"' not in page and 'name="email"' not in page


def test_a_password_sign_in_is_refused(client, actions, admin):
    token = actions.form_token("/login")
    response = client.post("/login", data={"email": admin.email, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 403 and "_user_id" not in _session(client)
    assert client.get("/manage/users/").status_code == 302


def test_the_sign_in_page_says_so_when_nothing_else_is_set_up(app, client, admin):
    app.config["OIDC_ISSUER"] = None
    page = client.get("/login").get_data(as_text=True)
    assert "Sign-in with a password is turned off" in page and 'name="password"' not in page


def test_break_glass_lets_an_admin_in_once(runner, client, actions, admin):
    result = break_glass(runner, "--email", "ROOT@example.com", "--minutes", "5")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Open within 5 minutes, once: http://localhost:5000/login/break-glass/")
    path = link_path(result.output)
    db.session.expire_all()
    assert admin.break_glass_hash and path.rsplit("/", 1)[1] not in admin.break_glass_hash
    page = client.get(path)  # a preview of the link uses nothing
    assert page.status_code == 200 and "Break-glass sign-in" in page.get_data(as_text=True)
    token = actions.form_token(path)
    response = client.post(path, data={"csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"] == "/manage/users/"
    assert client.get("/manage/users/").status_code == 200
    client.post("/logout", data={"csrf_token": actions.token()})
    again = client.post(path, data={"csrf_token": actions.form_token(path)})
    assert again.status_code == 403 and "used already" in again.get_data(as_text=True)
    events = [(e.action, e.actor, (e.changes or {}).get("method"))
              for e in db.session.scalars(db.select(AuditEvent).order_by(AuditEvent.id))]
    assert ("auth.break_glass_issued", "(command line)", None) in events
    assert ("auth.sign_in", "root@example.com", "break-glass link") in events


def test_an_expired_break_glass_link_is_refused(runner, client, actions, admin):
    path = link_path(break_glass(runner, "--email", admin.email).output)
    db.session.expire_all()
    admin.break_glass_expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    response = client.post(path, data={"csrf_token": actions.form_token(path)})
    assert response.status_code == 403 and "_user_id" not in _session(client)


def test_a_break_glass_link_needs_the_csrf_token(runner, client, admin):
    path = link_path(break_glass(runner, "--email", admin.email).output)
    assert client.post(path).status_code == 400
    db.session.expire_all()
    assert admin.break_glass_hash is not None  # not used up


def test_a_new_link_replaces_the_earlier_one(runner, client, actions, admin):
    first = link_path(break_glass(runner, "--email", admin.email).output)
    second = link_path(break_glass(runner, "--email", admin.email).output)
    assert client.post(first, data={"csrf_token": actions.form_token(first)}).status_code == 403
    assert client.post(second, data={"csrf_token": actions.form_token(second)}).status_code == 303


@pytest.mark.parametrize("role, active", [(Role.MANAGER.value, True), (Role.ADMIN.value, False)])
def test_break_glass_is_only_for_active_site_admins(runner, actions, admin, role, active):
    user = actions.user(role, email="other@example.com", username="other")
    user.active = active
    db.session.commit()
    result = break_glass(runner, "--email", "other@example.com")
    assert result.exit_code != 0 and "is not an active site admin" in result.output
    assert break_glass(runner, "--email", "nobody@example.com").exit_code != 0


def test_a_link_stops_working_when_its_admin_is_demoted(runner, client, actions, admin):
    path = link_path(break_glass(runner, "--email", admin.email).output)
    actions.user(Role.ADMIN.value, email="second@example.com", username="second")
    db.session.expire_all()
    admin.role = Role.MANAGER.value
    db.session.commit()
    assert client.post(path, data={"csrf_token": actions.form_token(path)}).status_code == 403


def _session(client) -> dict:
    with client.session_transaction() as stored:
        return dict(stored)


def test_setup_asks_no_password_and_the_admin_signs_in_with_single_sign_on(client, actions):
    page = client.get("/setup").get_data(as_text=True)
    assert 'name="password"' not in page and "through single sign-on" in page
    token = actions.form_token("/setup")
    response = client.post("/setup", data={"email": "First@Example.com", "username": "first", "csrf_token": token})
    assert response.status_code == 303
    first = db.session.scalar(db.select(User).filter_by(email="first@example.com"))
    assert first.role == Role.ADMIN.value and first.password_hash is None


def test_a_new_user_needs_no_password(runner, client, actions, admin):
    path = link_path(break_glass(runner, "--email", admin.email).output)
    assert client.post(path, data={"csrf_token": actions.form_token(path)}).status_code == 303
    page = client.get("/manage/users/new").get_data(as_text=True)
    assert 'name="email"' in page and 'name="password"' not in page
    token = actions.form_token("/manage/users/new")
    response = client.post("/manage/users/new", data={
        "email": "dev@example.com", "username": "dev", "role": Role.MEMBER.value, "active": "y",
        "csrf_token": token})
    assert response.status_code == 303, response.get_data(as_text=True)
    created = db.session.scalar(db.select(User).filter_by(email="dev@example.com"))
    assert created is not None and created.password_hash is None
