"""Sessions end when they should (SPEC §8): sign-in starts a new one; sign-out, a password
change, a role change and deactivation end every session of the user, checked by the server;
idle and absolute lifetimes; Secure cookies over https."""
import time

import pytest

from provider_admin import sessions
from provider_admin.extensions import db
from provider_admin.models import Role

from .conftest import PASSWORD
from .test_auth import is_signed_in, sign_in

# These tests read and change the database directly, in the app's context.
pytestmark = pytest.mark.usefixtures("app_context")


def session_cookie(client) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def put_cookie(client, value: str) -> None:
    client.set_cookie("session", value, domain="localhost")


@pytest.fixture
def second_client(app):
    return app.test_client()


def signed_in_copy(app, actions, user):
    """Another browser signed in as the same user."""
    from .conftest import Actions

    other = app.test_client()
    assert sign_in(Actions(other, app), user.email).status_code == 303
    return other


def test_a_cookie_saved_before_sign_out_no_longer_works(client, actions):
    user = actions.login(Role.MEMBER.value)
    saved = session_cookie(client)
    assert is_signed_in(client)
    actions.post("/logout")
    assert not is_signed_in(client)
    put_cookie(client, saved)  # replayed, as someone who copied it would
    response = client.get("/workspaces/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert user.session_version == 2


def test_sign_out_ends_every_session_of_the_user(app, client, actions):
    user = actions.login(Role.MEMBER.value)
    other = signed_in_copy(app, actions, user)
    assert is_signed_in(other)
    actions.post("/logout")
    assert not is_signed_in(other)


def test_sign_out_is_audited(client, actions):
    from provider_admin.models import AuditEvent

    user = actions.login(Role.MEMBER.value)
    actions.post("/logout")
    actions_seen = db.session.scalars(db.select(AuditEvent.action).filter_by(actor_id=user.id)).all()
    assert actions_seen == ["auth.sign_in", "auth.sign_out"]


@pytest.mark.parametrize("change", [
    {"password": "a new password 1"},
    {"role": "manager"},
    {"active": ""},
])
def test_an_admin_changing_password_role_or_status_ends_the_users_sessions(app, client, actions, change):
    admin = actions.login(Role.ADMIN.value, username="boss")
    dev = actions.user(Role.MEMBER.value, username="dev")
    dev_browser = signed_in_copy(app, actions, dev)
    assert is_signed_in(dev_browser)
    data = {"email": dev.email, "username": "dev", "role": "member", "active": "y", **change}
    data = {k: v for k, v in data.items() if v != ""}
    assert actions.post(f"/manage/users/{dev.id}/edit", data).status_code == 303
    assert not is_signed_in(dev_browser)
    assert is_signed_in(client) and admin.session_version == 1  # the admin's own session is untouched


def test_saving_a_user_unchanged_keeps_their_sessions(app, client, actions):
    actions.login(Role.ADMIN.value, username="boss")
    dev = actions.user(Role.MEMBER.value, username="dev")
    dev_browser = signed_in_copy(app, actions, dev)
    data = {"email": dev.email, "username": "dev", "role": "member", "active": "y"}
    assert actions.post(f"/manage/users/{dev.id}/edit", data).status_code == 303
    assert is_signed_in(dev_browser)


def test_changing_ones_own_password_keeps_this_session_and_ends_the_others(app, client, actions):
    admin = actions.login(Role.ADMIN.value, username="boss")
    elsewhere = signed_in_copy(app, actions, admin)
    data = {"email": admin.email, "username": "boss", "role": "admin", "active": "y",
            "password": "a brand new password"}
    assert actions.post(f"/manage/users/{admin.id}/edit", data).status_code == 303
    assert is_signed_in(client)
    assert not is_signed_in(elsewhere)


def test_a_change_from_the_command_line_ends_sessions_too(app, client, actions):
    user = actions.login(Role.MANAGER.value)
    user.active = False  # any write path: the rule lives with the model, not in a view
    db.session.commit()
    assert user.session_version == 2
    assert not is_signed_in(client)


def test_sign_in_starts_a_new_session_with_a_new_csrf_secret(client, actions):
    user = actions.user(Role.MEMBER.value)
    actions.form_token("/login")
    with client.session_transaction() as before:
        before["planted"] = "by someone who fixed the session"
        old_secret = before["csrf_token"]
    assert sign_in(actions, user.email).status_code == 303
    with client.session_transaction() as after:
        assert "planted" not in after
        assert after.get("csrf_token") != old_secret
        assert after[sessions.VERSION] == user.session_version


class TestLifetimes:
    @pytest.fixture
    def app_config(self):
        return {"SESSION_IDLE_TIMEOUT": 600, "SESSION_LIFETIME": 3600}

    def age(self, client, **seconds):
        with client.session_transaction() as session:
            for key, value in seconds.items():
                session[key] = int(time.time()) - value

    def test_a_session_idle_for_longer_than_the_setting_ends(self, client, actions):
        actions.login(Role.MEMBER.value)
        self.age(client, _seen=599)
        assert is_signed_in(client)
        self.age(client, _seen=601)
        assert not is_signed_in(client)

    def test_use_keeps_a_session_alive_until_its_absolute_lifetime(self, client, actions):
        actions.login(Role.MEMBER.value)
        self.age(client, _started=3500, _seen=100)
        assert is_signed_in(client)
        with client.session_transaction() as session:  # the request marked it used
            assert int(time.time()) - session["_seen"] < 5
        self.age(client, _started=3601)
        assert not is_signed_in(client)

    def test_a_session_without_its_times_is_not_accepted(self, client, actions):
        actions.login(Role.MEMBER.value)
        with client.session_transaction() as session:
            del session["_started"]
        assert not is_signed_in(client)


def test_the_defaults_are_a_working_day_idle_and_a_day_in_all(app):
    assert app.config["SESSION_IDLE_TIMEOUT"] == 12 * 3600
    assert app.config["SESSION_LIFETIME"] == 24 * 3600


def set_cookie_header(response) -> str:
    return next(v for k, v in response.headers.items() if k == "Set-Cookie" and v.startswith("session="))


def test_the_cookie_is_secure_over_https_and_not_over_http(app, actions):
    actions.user(Role.MEMBER.value)
    plain = app.test_client().get("/login")
    secure = app.test_client().get("/login", base_url="https://localhost")
    assert "Secure" not in set_cookie_header(plain)
    assert "; Secure" in set_cookie_header(secure)
    assert "HttpOnly" in set_cookie_header(secure) and "SameSite=Lax" in set_cookie_header(secure)


class TestBehindAnHttpsProxy:
    @pytest.fixture
    def app_config(self):
        return {"PROXY_FIX": True}

    def test_the_cookie_is_secure_when_the_proxy_says_https(self, app, actions):
        actions.user(Role.MEMBER.value)
        response = app.test_client().get("/login", headers={"X-Forwarded-Proto": "https"})
        assert "; Secure" in set_cookie_header(response)


class TestSecureCookiesForced:
    @pytest.fixture
    def app_config(self):
        return {"SESSION_COOKIE_SECURE": True}

    def test_the_cookie_is_always_secure(self, app, actions):
        actions.user(Role.MEMBER.value)
        assert "; Secure" in set_cookie_header(app.test_client().get("/login"))


def test_a_wrong_password_never_signs_in_even_with_a_planted_session(client, actions):
    user = actions.user(Role.ADMIN.value)
    actions.form_token("/login")
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)  # as if a cookie could be forged: it cannot, but the
        session[sessions.VERSION] = 99  # version must match the server's as well
        session["_started"] = session["_seen"] = int(time.time())
    assert not is_signed_in(client)
    assert sign_in(actions, user.email, password=PASSWORD + "x").status_code == 422
