"""First-run setup, sign-in and sign-out, the trusted header, and CSRF."""
import re

import pytest

from provider_admin.extensions import db
from provider_admin.models import AuditEvent, Role, User

from .conftest import PASSWORD, field_error


def sign_in(actions, email, password=PASSWORD, url="/login"):
    token = actions.form_token("/login")
    return actions.client.post(url, data={"email": email, "password": password, "csrf_token": token})


def is_signed_in(client) -> bool:
    return client.get("/workspaces/").status_code == 200


# --- first-run setup -------------------------------------------------------------------

@pytest.mark.parametrize("url", ["/", "/login", "/workspaces/", "/manage/providers/", "/manage/users/",
                                 "/manage/audit/", "/no-such-page"])
def test_without_users_every_page_leads_to_setup(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response.headers["Location"] == "/setup"


def test_setup_page_has_the_contract_fields(client):
    html = client.get("/setup").get_data(as_text=True)
    for label in ("Email", "Username", "Password"):
        assert re.search(rf"<label[^>]*>{label}</label>", html)
    assert ">Create account</button>" in html


def test_setup_creates_a_site_admin_and_signs_in(client, actions):
    token = actions.form_token("/setup")
    response = client.post("/setup", data={"email": " Root@Example.com ", "username": "root",
                                           "password": "long enough", "csrf_token": token})
    assert response.status_code == 303
    assert response.headers["Location"] == "/manage/providers/"
    user = db.session.scalars(db.select(User)).one()
    assert (user.email, user.username, user.role) == ("root@example.com", "root", Role.ADMIN.value)
    assert user.check_password("long enough")
    assert client.get("/manage/users/").status_code == 200  # signed in, as an admin
    event = db.session.scalars(db.select(AuditEvent)).one()
    assert (event.action, event.actor, event.target_name) == ("user.create", "root@example.com", "root@example.com")


def test_once_a_user_exists_setup_leads_to_sign_in(client, actions):
    actions.user(Role.MEMBER.value)
    assert client.get("/setup").headers["Location"] == "/login"
    token = actions.form_token("/login")
    response = client.post("/setup", data={"email": "intruder@example.com", "username": "intruder",
                                           "password": "long enough", "csrf_token": token})
    assert response.headers["Location"] == "/login"
    assert db.session.scalar(db.select(User).filter_by(username="intruder")) is None


@pytest.mark.parametrize("field, value, message", [
    ("email", "not-an-email", "Invalid email address."),
    ("email", "", "This field is required."),
    ("password", "short", "Field must be between 8 and 200 characters long."),
    ("username", "Not Valid", "Use lowercase letters"),
])
def test_setup_shows_errors_at_the_field(client, actions, field, value, message):
    data = {"email": "root@example.com", "username": "root", "password": "long enough"}
    data[field] = value
    response = client.post("/setup", data={**data, "csrf_token": actions.form_token("/setup")})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert message in field_error(html, field)
    assert f'id="{field}" ' in html and 'aria-invalid="true"' in html
    assert db.session.scalar(db.select(db.func.count(User.id))) == 0


# --- sign-in and sign-out --------------------------------------------------------------

def test_sign_in_page_has_the_contract_fields(client, actions):
    actions.user()
    html = client.get("/login").get_data(as_text=True)
    assert re.search(r"<label[^>]*>Email</label>", html) and re.search(r"<label[^>]*>Password</label>", html)
    assert ">Sign in</button>" in html


@pytest.mark.parametrize("role, home", [(Role.ADMIN.value, "/manage/providers/"),
                                        (Role.MANAGER.value, "/manage/providers/"),
                                        (Role.MEMBER.value, "/workspaces/")])
def test_sign_in_lands_on_the_role_home(client, actions, role, home):
    user = actions.user(role)
    response = sign_in(actions, user.email.upper())  # the email is matched case-insensitively
    assert response.status_code == 303
    assert client.get(response.headers["Location"]).headers["Location"] == home


@pytest.mark.parametrize("email, password", [("admin1@example.com", "wrong password"),
                                             ("nobody@example.com", PASSWORD)])
def test_wrong_credentials_are_refused_with_one_message(client, actions, email, password):
    actions.user(username="admin1")
    response = sign_in(actions, email, password)
    assert response.status_code == 422
    assert "Wrong email or password" in field_error(response.get_data(as_text=True), "password")
    assert not is_signed_in(client)


def test_deactivated_user_cannot_sign_in(client, actions):
    user = actions.user(Role.MEMBER.value)
    user.active = False
    db.session.commit()
    response = sign_in(actions, user.email)
    assert response.status_code == 422
    assert "deactivated" in field_error(response.get_data(as_text=True), "password")
    assert not is_signed_in(client)


def test_deactivation_ends_an_open_session(client, actions):
    user = actions.login(Role.MEMBER.value)
    assert is_signed_in(client)
    user.active = False
    db.session.commit()
    response = client.get("/workspaces/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


@pytest.mark.parametrize("next_url, expected", [
    ("/manage/organizations/", "/manage/organizations/"),
    ("/manage/audit/?type=user", "/manage/audit/?type=user"),
    ("//evil.example", "/"),
    ("//evil.example/manage/", "/"),
    ("https://evil.example/", "/"),
    ("http:evil.example", "/"),
    ("javascript:alert(1)", "/"),
    ("/\t/evil.example", "/"),
    ("evil.example", "/"),
])
def test_next_is_honoured_only_for_local_paths(client, actions, next_url, expected):
    user = actions.user()
    response = sign_in(actions, user.email, url="/login?" + _query(next=next_url))
    assert response.status_code == 303
    assert response.headers["Location"] == expected


def test_backslash_next_cannot_leave_the_site(client, actions):
    # Browsers read "\" as "/" in http URLs, so "/\evil.example" must not become "//evil.example".
    user = actions.user()
    response = sign_in(actions, user.email, url="/login?" + _query(next="/\\evil.example"))
    location = response.headers["Location"].replace("\\", "/")
    assert location.startswith("/") and not location.startswith("//")


def test_anonymous_visit_comes_back_after_sign_in(client, actions):
    user = actions.user()
    response = client.get("/manage/audit/?type=user")
    assert response.status_code == 302
    login_url = response.headers["Location"]
    assert login_url.startswith("/login?next=")
    assert "Please sign in to continue." in client.get(login_url).get_data(as_text=True)
    assert sign_in(actions, user.email, url=login_url).headers["Location"] == "/manage/audit/?type=user"


def test_sign_out_needs_post(client, actions):
    actions.login()
    assert client.get("/logout").status_code == 405
    assert is_signed_in(client)


def test_sign_out_without_csrf_token_is_refused(client, actions):
    actions.login()
    response = client.post("/logout")
    assert response.status_code == 400
    assert "The CSRF token is missing." in response.get_data(as_text=True)
    assert is_signed_in(client)


def test_sign_out_with_csrf_token(client, actions):
    actions.login()
    response = actions.post("/logout")
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert not is_signed_in(client)


def test_signed_in_page_offers_sign_out_form_with_token(client, actions):
    actions.login(Role.MEMBER.value)
    html = client.get("/workspaces/").get_data(as_text=True)
    form = re.search(r'<form class="signout" method="post" action="/logout">(.*?)</form>', html, re.S)
    assert form and 'name="csrf_token"' in form.group(1) and "Sign out" in form.group(1)


# --- trusted header --------------------------------------------------------------------

def test_trusted_header_is_ignored_unless_configured(client, actions):
    admin = actions.user()
    response = client.get("/manage/providers/", headers={"X-Forwarded-Email": admin.email})
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


class TestTrustedHeader:
    @pytest.fixture
    def app_config(self):
        return {"TRUSTED_HEADER": "X-Forwarded-Email", "TRUSTED_PROXIES": "127.0.0.1"}

    @pytest.mark.parametrize("role, url, status", [
        (Role.ADMIN.value, "/manage/users/", 200),
        (Role.MANAGER.value, "/manage/providers/", 200),
        (Role.MANAGER.value, "/manage/users/", 403),
        (Role.MEMBER.value, "/workspaces/", 200),
        (Role.MEMBER.value, "/manage/providers/", 403),
    ])
    def test_known_user_is_signed_in_with_their_role(self, client, actions, role, url, status):
        user = actions.user(role)
        response = client.get(url, headers={"X-Forwarded-Email": f"  {user.email.upper()} "})
        assert response.status_code == status
        if status == 200:
            assert f"{user.username} · {user.role_label}" in response.get_data(as_text=True)

    @pytest.mark.parametrize("value", ["stranger@example.com", "", "   "])
    def test_unknown_or_empty_header_gets_nothing(self, client, actions, value):
        actions.user()
        response = client.get("/manage/providers/", headers={"X-Forwarded-Email": value})
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")

    def test_deactivated_user_gets_nothing(self, client, actions):
        user = actions.user()
        user.active = False
        db.session.commit()
        response = client.get("/manage/providers/", headers={"X-Forwarded-Email": user.email})
        assert response.status_code == 302

    def test_other_header_names_are_not_trusted(self, client, actions):
        user = actions.user()
        response = client.get("/manage/providers/", headers={"X-Remote-User": user.email})
        assert response.status_code == 302

    def test_header_sign_in_lasts_one_request(self, app, client, actions):
        user = actions.user()
        # One app context per request, as in production (the fixture's would carry `g` over).
        with app.app_context():
            assert client.get("/manage/providers/", headers={"X-Forwarded-Email": user.email}).status_code == 200
        with app.app_context():
            assert client.get("/manage/providers/").status_code == 302

    def test_the_header_wins_over_an_earlier_session(self, app, client, actions):
        first, second = actions.user(username="first"), actions.user(username="second")
        assert sign_in(actions, first.email).status_code == 303
        with app.app_context():
            page = client.get("/workspaces/", headers={"X-Forwarded-Email": second.email})
        assert "second · " in page.get_data(as_text=True) and "first · " not in page.get_data(as_text=True)
        with app.app_context():
            refused = client.get("/workspaces/", headers={"X-Forwarded-Email": "stranger@example.com"})
        assert refused.status_code == 302

    def test_password_sign_in_still_works(self, client, actions):
        user = actions.user()
        assert sign_in(actions, user.email).status_code == 303
        assert is_signed_in(client)


# --- CSRF ------------------------------------------------------------------------------

@pytest.mark.parametrize("data, message", [
    ({}, "The CSRF token is missing."),
    ({"csrf_token": "forged"}, "The CSRF token is invalid."),
])
def test_post_without_valid_token_is_refused_with_a_page(client, actions, data, message):
    actions.login()
    actions.token()  # a page was shown: the session holds a CSRF secret
    response = client.post("/manage/organizations/", data={"name": "Acme", **data})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert message in html and "Reload the page and try again." in html
    assert "<h1>400</h1>" in html
    assert db.session.scalar(db.select(db.func.count()).select_from(db.table("organizations"))) == 0


def test_sign_in_form_needs_the_token(client, actions):
    user = actions.user()
    response = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 400
    assert not is_signed_in(client)


def test_htmx_post_with_token_header_passes(client, actions):
    actions.login()
    response = actions.post("/manage/organizations/", {"name": "Acme"}, htmx=True)
    assert response.status_code == 200
    assert response.headers["HX-Redirect"] == "/manage/organizations/"


def test_htmx_post_without_token_header_gets_a_flash_fragment(client, actions):
    actions.login()
    response = client.post("/manage/organizations/", data={"name": "Acme"}, headers={"HX-Request": "true"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert response.headers["HX-Retarget"] == "#flashes"
    assert response.headers["HX-Reswap"] == "innerHTML"
    assert "HX-Request" in response.headers["Vary"]
    assert "The CSRF token is missing." in html and 'role="alert"' in html
    assert "<html" not in html


def test_every_page_carries_the_token_for_htmx(client, actions):
    actions.login()
    html = client.get("/manage/organizations/").get_data(as_text=True)
    assert re.search(r"<body hx-headers='\{\"X-CSRFToken\": \"[^\"]+\"\}'>", html)


def _query(**params) -> str:
    from urllib.parse import urlencode

    return urlencode(params)


# --- trusted proxies ---------------------------------------------------------------------

class TestTrustedProxies:
    @pytest.fixture
    def app_config(self):
        return {"TRUSTED_HEADER": "X-Forwarded-Email", "TRUSTED_PROXIES": "10.0.0.5, 192.168.10.0/24, ::1",
                "PROXY_FIX": True}

    @pytest.mark.parametrize("peer, believed", [
        ("10.0.0.5", True), ("192.168.10.77", True), ("::1", True), ("::ffff:10.0.0.5", True),
        ("10.0.0.6", False), ("127.0.0.1", False), ("203.0.113.9", False), ("not-an-address", False),
    ])
    def test_the_header_is_believed_only_from_a_listed_proxy(self, client, actions, peer, believed):
        user = actions.user()
        response = client.get("/manage/users/", headers={"X-Forwarded-Email": user.email},
                              environ_base={"REMOTE_ADDR": peer})
        assert response.status_code == (200 if believed else 302)

    def test_a_forwarded_for_naming_the_proxy_does_not_make_a_client_trusted(self, client, actions):
        # X-Forwarded-For is the client's word; only the connecting socket counts.
        user = actions.user()
        response = client.get("/manage/users/", environ_base={"REMOTE_ADDR": "203.0.113.9"},
                              headers={"X-Forwarded-Email": user.email, "X-Forwarded-For": "10.0.0.5"})
        assert response.status_code == 302

    def test_the_proxy_may_forward_the_clients_address(self, client, actions):
        user = actions.user()
        response = client.get("/manage/users/", environ_base={"REMOTE_ADDR": "10.0.0.5"},
                              headers={"X-Forwarded-Email": user.email, "X-Forwarded-For": "203.0.113.9"})
        assert response.status_code == 200


def test_a_trusted_header_without_trusted_proxies_is_ignored_and_says_so(database_url, caplog):
    from provider_admin import create_app

    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "TESTING": True, "SECRET_KEY": "x",
                      "TRUSTED_HEADER": "X-Forwarded-Email"})
    assert "TRUSTED_PROXIES is empty: the header is ignored" in caplog.text
    with app.app_context():
        db.session.add(User(email="root@example.com", username="root", role=Role.ADMIN.value))
        db.session.commit()
        response = app.test_client().get("/manage/users/", headers={"X-Forwarded-Email": "root@example.com"})
        db.engine.dispose()
    assert response.status_code == 302


def test_a_malformed_trusted_proxy_stops_the_start_with_its_name(database_url):
    from provider_admin import create_app

    with pytest.raises(ValueError, match="PROVIDER_ADMIN_TRUSTED_PROXIES: .*10.0.0.300"):
        create_app({"SQLALCHEMY_DATABASE_URI": database_url, "TESTING": True, "SECRET_KEY": "x",
                    "TRUSTED_PROXIES": "10.0.0.1, 10.0.0.300"})
