"""Personal access tokens (SPEC §10): created on the API tokens page and shown once, stored as
a hash, acting as their owner with the owner's role at the time of use, read-only or
read-write, revocable by the owner and by site admins, and never a session."""
import re
from datetime import timedelta

import pytest

from provider_admin.extensions import db
from provider_admin.models import AuditEvent, Role, User, utcnow
from provider_admin.tokens import secrets
from provider_admin.tokens.models import ApiToken

from .conftest import field_error
from .tests_api import call as api

PROBLEM = "application/problem+json"


def create_token(actions, name="CI", days="30", access="read"):
    response = actions.post("/tokens/", {"name": name, "days": days, "access": access})
    assert response.status_code == 201, response.data
    page = response.get_data(as_text=True)
    return re.search(r'id="new-token" class="secret" readonly value="([^"]+)"', page).group(1)




@pytest.fixture
def fresh_client(app):
    """A client with no cookies: what a script sends."""
    return app.test_client()


def test_a_new_token_is_shown_once_and_stored_only_as_its_hash(client, actions):
    actions.login(Role.MANAGER.value, username="ada")
    secret = create_token(actions, name="CI: check providers")
    assert secrets.well_formed(secret) and secret.startswith("pvat_") and len(secret) == 43
    stored = db.session.scalar(db.select(ApiToken))
    assert stored.secret_hash == secrets.digest(secret) and stored.hint == secret[:9]
    assert stored.read_only and timedelta(days=29, hours=23) < stored.expires_at - utcnow() <= timedelta(days=30)
    assert all(secret not in str(value) for value in db.session.execute(db.select(ApiToken.__table__)).one())
    page = client.get("/tokens/").get_data(as_text=True)
    assert secret not in page and f"{secret[:9]}…" in page and "CI: check providers" in page
    assert "Read-only" in page and "never" in page
    event = db.session.scalar(db.select(AuditEvent).filter_by(action="api_token.create"))
    assert event.target_type == "api_token" and secret not in str(event.changes)
    assert event.changes["scope"] == "Read-only"


def test_each_token_is_different_and_a_changed_character_breaks_its_checksum():
    tokens = {secrets.generate() for _ in range(200)}
    assert len(tokens) == 200 and all(secrets.well_formed(t) for t in tokens)
    token = tokens.pop()
    flipped = token[:10] + ("a" if token[10] != "a" else "b") + token[11:]
    assert not secrets.well_formed(flipped)
    assert not secrets.well_formed(token + "x") and not secrets.well_formed("ghp_" + token[5:])


@pytest.mark.parametrize("data, field, message", [
    ({"name": " ", "days": "30", "access": "read"}, "name", "Name the token after what uses it."),
    ({"name": "x" * 101, "days": "30", "access": "read"}, "name", "Field cannot be longer than 100 characters."),
    ({"name": "CI", "days": "10000", "access": "read"}, "days", "Not a valid choice."),
])
def test_a_wrong_form_is_answered_422_at_the_field_and_creates_nothing(client, actions, data, field, message):
    actions.login(Role.MEMBER.value)
    response = actions.post("/tokens/", data)
    assert response.status_code == 422
    assert message in field_error(response.get_data(as_text=True), field)
    assert db.session.scalar(db.select(db.func.count()).select_from(ApiToken)) == 0


def test_creating_and_revoking_need_the_csrf_token(client, actions):
    user = actions.login(Role.MEMBER.value)
    assert client.post("/tokens/", data={"name": "CI", "days": "30", "access": "read"}).status_code == 400
    token, _ = _make(user, "CI")
    assert client.post(f"/tokens/{token.id}/revoke").status_code == 400
    db.session.refresh(token)
    assert token.revoked_at is None


def _make(user, name, read_only=True, days=30):
    from provider_admin.tokens import service

    return service.create(user, name, days, read_only)


def test_a_token_acts_as_its_owner_without_cookie_or_session(fresh_client, actions):
    user = actions.user(Role.MANAGER.value, username="ada")
    _, secret = _make(user, "script")
    response = api(fresh_client, "GET", "/me", secret)
    assert response.status_code == 200
    assert response.json["email"] == user.email and response.json["role"] == "manager"
    assert response.json["token"]["name"] == "script" and response.json["token"]["read_only"] is True
    assert "Set-Cookie" not in response.headers
    assert fresh_client.get_cookie("session") is None


def test_the_role_is_the_owners_at_the_time_of_use(fresh_client, actions):
    user = actions.user(Role.ADMIN.value, username="ada")
    actions.user(Role.ADMIN.value, username="other")  # the site keeps an admin
    _, secret = _make(user, "script")
    assert api(fresh_client, "GET", "/tokens?owner=all", secret).status_code == 200
    user.role = Role.MEMBER.value
    db.session.commit()
    assert api(fresh_client, "GET", "/me", secret).json["role"] == "member"
    response = api(fresh_client, "GET", "/tokens?owner=all", secret)
    assert response.status_code == 403 and response.mimetype == PROBLEM


@pytest.mark.parametrize("header, title", [
    (None, "Authentication required"),
    ("Basic YWRhOnB3", "Authentication required"),
    ("Bearer ", "Authentication required"),
    ("Bearer pvat_" + "A" * 38, "Invalid token"),
    ("Bearer not-a-token", "Invalid token"),
])
def test_a_request_without_a_valid_token_is_refused_with_a_problem(fresh_client, header, title):
    headers = {"Authorization": header} if header is not None else {}
    response = fresh_client.get("/api/v1/me", headers=headers)
    assert response.status_code == 401 and response.mimetype == PROBLEM
    assert response.json["title"] == title and response.json["status"] == 401
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="Provider Admin API"')


def test_revoked_expired_and_deactivated_tokens_are_refused(fresh_client, actions):
    user = actions.user(Role.MEMBER.value, username="ada")
    revoked, revoked_secret = _make(user, "old")
    expired, expired_secret = _make(user, "older")
    _, live_secret = _make(user, "live")
    from provider_admin.tokens import service

    service.revoke(revoked, user)
    expired.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert api(fresh_client, "GET", "/me", revoked_secret).json["title"] == "Token revoked"
    assert api(fresh_client, "GET", "/me", expired_secret).json["title"] == "Token expired"
    assert api(fresh_client, "GET", "/me", live_secret).status_code == 200
    user.active = False
    db.session.commit()
    response = api(fresh_client, "GET", "/me", live_secret)
    assert response.status_code == 401 and response.json["title"] == "Account deactivated"


def test_a_read_only_token_takes_reads_only(fresh_client, actions):
    user = actions.user(Role.MEMBER.value, username="ada")
    target, _ = _make(user, "target")
    _, reader = _make(user, "reader", read_only=True)
    _, writer = _make(user, "writer", read_only=False)
    response = api(fresh_client, "DELETE", f"/tokens/{target.id}", reader)
    assert response.status_code == 403 and response.json["title"] == "Read-only token"
    db.session.refresh(target)
    assert target.revoked_at is None
    assert api(fresh_client, "DELETE", f"/tokens/{target.id}", writer).status_code == 204
    db.session.refresh(target)
    assert target.revoked_at is not None and target.revoked_by == user.email


def test_someone_elses_token_is_missing_unless_you_are_an_admin(fresh_client, actions):
    ada = actions.user(Role.MANAGER.value, username="ada")
    bob = actions.user(Role.MEMBER.value, username="bob")
    boss = actions.user(Role.ADMIN.value, username="boss")
    bobs, _ = _make(bob, "bob's")
    _, ada_secret = _make(ada, "ada", read_only=False)
    _, boss_secret = _make(boss, "boss", read_only=False)
    response = api(fresh_client, "DELETE", f"/tokens/{bobs.id}", ada_secret)
    assert response.status_code == 404 and response.mimetype == PROBLEM
    assert [t["name"] for t in api(fresh_client, "GET", "/tokens", ada_secret).json["items"]] == ["ada"]
    everyone = api(fresh_client, "GET", "/tokens?owner=all", boss_secret).json["items"]
    assert {t["name"] for t in everyone} == {"bob's", "ada", "boss"}
    assert all("secret" not in t and "secret_hash" not in t for t in everyone)
    assert api(fresh_client, "DELETE", f"/tokens/{bobs.id}", boss_secret).status_code == 204


def test_a_browser_session_does_not_open_the_api(client, actions):
    actions.login(Role.ADMIN.value)
    assert client.get("/workspaces/").status_code == 200
    response = client.get("/api/v1/me")
    assert response.status_code == 401 and response.mimetype == PROBLEM
    assert "Set-Cookie" not in response.headers


def test_a_token_does_not_open_the_pages(fresh_client, actions):
    user = actions.user(Role.ADMIN.value, username="ada")
    _, secret = _make(user, "script", read_only=False)
    for path in ("/manage/providers/", "/tokens/", "/workspaces/"):
        response = fresh_client.get(path, headers={"Authorization": f"Bearer {secret}"})
        assert response.status_code == 401, path
        assert "API tokens are accepted under /api/v1/ only" in response.get_data(as_text=True)
    response = fresh_client.post("/tokens/", data={"name": "x", "days": "30", "access": "write"},
                                 headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 401
    assert db.session.scalar(db.select(db.func.count()).select_from(ApiToken)) == 1


def test_last_use_is_recorded_at_most_once_a_minute(fresh_client, actions):
    user = actions.user(Role.MEMBER.value, username="ada")
    token, secret = _make(user, "poller")
    api(fresh_client, "GET", "/me", secret)
    db.session.refresh(token)
    first = token.last_used_at
    assert first is not None and token.last_used_address == "127.0.0.1"
    api(fresh_client, "GET", "/me", secret)
    db.session.refresh(token)
    assert token.last_used_at == first
    token.last_used_at = first - timedelta(minutes=2)
    db.session.commit()
    api(fresh_client, "GET", "/me", secret)
    db.session.refresh(token)
    assert token.last_used_at > first - timedelta(minutes=2)


def test_the_owner_revokes_on_the_page_and_the_next_request_is_refused(client, actions, app):
    user = actions.login(Role.MEMBER.value, username="ada")
    token, secret = _make(user, "laptop")
    response = actions.post(f"/tokens/{token.id}/revoke")
    assert response.status_code == 303 and response.headers["Location"].endswith("/tokens/")
    page = client.get("/tokens/").get_data(as_text=True)
    assert "The token &#34;laptop&#34; is revoked." in page or 'The token "laptop" is revoked.' in page
    row = re.search(rf'<tr id="token-row-{token.id}">(.*?)</tr>', page, re.S).group(1)
    assert "Revoked" in row and "<button" not in row
    assert api(app.test_client(), "GET", "/me", secret).status_code == 401
    event = db.session.scalar(db.select(AuditEvent).filter_by(action="api_token.revoke"))
    assert event.actor == user.email and event.target_name == "laptop"


def test_admins_see_and_revoke_everyones_tokens_and_others_do_not(client, actions):
    bob = actions.user(Role.MEMBER.value, username="bob")
    bobs, _ = _make(bob, "bob's CI")
    actions.login(Role.MANAGER.value, username="ada")
    assert client.get("/tokens/all").status_code == 403
    assert "bob&#39;s CI" not in client.get("/tokens/").get_data(as_text=True)
    assert actions.post(f"/tokens/{bobs.id}/revoke").status_code == 404
    actions.login(Role.ADMIN.value, username="boss")
    page = client.get("/tokens/all").get_data(as_text=True)
    assert "bob&#39;s CI" in page and bob.email in page
    response = actions.post(f"/tokens/{bobs.id}/revoke", {"back": "all"})
    assert response.status_code == 303 and response.headers["Location"].endswith("/tokens/all")
    db.session.refresh(bobs)
    assert bobs.revoked_by == "boss@example.com"
    page = client.get("/tokens/all").get_data(as_text=True)
    assert "Revoked by boss@example.com" in page


def test_signed_out_visitors_are_sent_to_sign_in(client, actions):
    actions.user(Role.ADMIN.value)
    response = client.get("/tokens/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_api_errors_are_problem_documents(fresh_client, actions):
    user = actions.user(Role.MEMBER.value, username="ada")
    _, secret = _make(user, "script")
    response = api(fresh_client, "GET", "/tokens/999", secret)
    assert response.status_code in (404, 405) and response.mimetype == PROBLEM
    response = api(fresh_client, "GET", "/nothing-here", secret)
    assert response.status_code == 404 and response.mimetype == PROBLEM
    assert response.json == {"type": "about:blank", "title": "Not Found", "status": 404,
                             "instance": "/api/v1/nothing-here"}


def test_audit_log_filters_token_events(client, actions):
    actions.login(Role.ADMIN.value, username="boss")
    create_token(actions, name="deploy bot", access="write")
    page = client.get("/manage/audit/?type=api_token").get_data(as_text=True)
    assert "api_token.create" in page and "deploy bot" in page
    assert db.session.scalar(db.select(User).filter_by(username="boss")) is not None


class TestRateLimits:
    @pytest.fixture
    def app_config(self):
        return {"API_RATE_LIMIT": "3/minute"}

    def test_past_the_limit_a_token_gets_429_with_retry_after(self, fresh_client, actions):
        user = actions.user(Role.MEMBER.value, username="ada")
        _, first = _make(user, "busy")
        _, second = _make(user, "quiet")
        assert [api(fresh_client, "GET", "/me", first).status_code for _ in range(3)] == [200, 200, 200]
        response = api(fresh_client, "GET", "/me", first)
        assert response.status_code == 429 and response.mimetype == PROBLEM
        assert 1 <= int(response.headers["Retry-After"]) <= 60
        assert "3 per 1 minute" in response.json["detail"]
        assert api(fresh_client, "GET", "/me", second).status_code == 200  # counted per token

    def test_bad_tokens_are_limited_per_address(self, fresh_client):
        statuses = [fresh_client.get("/api/v1/me", headers={"Authorization": "Bearer nope"}).status_code
                    for _ in range(4)]
        assert statuses == [401, 401, 401, 429]


@pytest.mark.parametrize("setting", [{"API_RATE_LIMIT": "lots"}, {"API_RATE_LIMIT_STORAGE": "nowhere://x"}])
def test_a_wrong_rate_limit_setting_stops_the_start_with_its_name(database_url, setting):
    from provider_admin import create_app

    from .conftest import ENCRYPTION_KEY

    with pytest.raises(ValueError, match="PROVIDER_ADMIN_API_RATE_LIMIT"):
        create_app({"SQLALCHEMY_DATABASE_URI": database_url, "AUTO_MIGRATE": False, "TESTING": True,
                    "SECRET_KEY": "x", "ENCRYPTION_KEY": ENCRYPTION_KEY, "RUN_SCHEDULER": False, **setting})


def _redis_reachable() -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _redis_reachable(), reason="no Redis server on 127.0.0.1:6379")
def test_with_redis_two_processes_share_one_count(database_url, actions, app):
    """Two app instances stand for two gunicorn workers: with Redis they count together."""
    from provider_admin import create_app

    from .conftest import ENCRYPTION_KEY

    config = {"SQLALCHEMY_DATABASE_URI": database_url, "AUTO_MIGRATE": False, "TESTING": True,
              "SECRET_KEY": "x", "ENCRYPTION_KEY": ENCRYPTION_KEY, "RUN_SCHEDULER": False,
              "API_RATE_LIMIT": "4/minute", "API_RATE_LIMIT_STORAGE": "redis://127.0.0.1:6379"}
    workers = [create_app(config).test_client() for _ in range(2)]
    _, secret = _make(actions.user(Role.MEMBER.value, username="ada"), "shared")
    statuses = [api(workers[i % 2], "GET", "/me", secret).status_code for i in range(5)]
    assert statuses == [200, 200, 200, 200, 429]
