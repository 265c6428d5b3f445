"""Roles on every Manage route, collected from the URL map so that a new route cannot forget them."""
import re

import pytest

from provider_admin import create_app
from provider_admin.models import Role

from .conftest import ENCRYPTION_KEY

MISSING_ID = 999999  # the role check comes before the lookup, so no object is needed


def manage_routes() -> list[tuple[str, str]]:
    """(method, url) for every GET and POST of every /manage/ rule, ids filled in."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "AUTO_MIGRATE": False,
                      "SECRET_KEY": "x", "ENCRYPTION_KEY": ENCRYPTION_KEY})
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/manage/"):
            url = re.sub(r"<(?:[^<>:]+:)?[^<>]+>", str(MISSING_ID), rule.rule)
            routes |= {(method, url) for method in rule.methods & {"GET", "POST"}}
    return sorted(routes)


ROUTES = manage_routes()
ADMIN_ONLY = ("/manage/users/", "/manage/notifications/")  # areas for site admins alone
USER_ROUTES = [r for r in ROUTES if r[1].startswith(ADMIN_ONLY)]
OTHER_ROUTES = [r for r in ROUTES if not r[1].startswith(ADMIN_ONLY)]
ids = [f"{m} {u}" for m, u in ROUTES]


def request(actions, method, url, htmx=False):
    if method == "GET":
        return actions.htmx_get(url) if htmx else actions.client.get(url)
    return actions.post(url, htmx=htmx)


def test_the_route_list_covers_every_manage_area(app):
    assert ROUTES == sorted(
        (m, re.sub(r"<(?:[^<>:]+:)?[^<>]+>", str(MISSING_ID), r.rule))
        for r in app.url_map.iter_rules() if r.rule.startswith("/manage/") for m in r.methods & {"GET", "POST"}
    )
    for area in ("providers", "organizations", "users", "audit", "notifications"):
        assert any(url.startswith(f"/manage/{area}/") for _, url in ROUTES), area
    assert any(method == "POST" for method, _ in ROUTES)


@pytest.mark.parametrize("method, url", ROUTES, ids=ids)
def test_member_gets_a_403_page(actions, method, url):
    actions.login(Role.MEMBER.value)
    response = request(actions, method, url)
    html = response.get_data(as_text=True)
    assert response.status_code == 403
    assert response.mimetype == "text/html"
    assert "<h1>403</h1>" in html and "You do not have permission to open this page." in html
    assert "Traceback" not in html


@pytest.mark.parametrize("method, url", ROUTES, ids=ids)
def test_member_gets_a_403_fragment_for_htmx(actions, method, url):
    actions.login(Role.MEMBER.value)
    response = request(actions, method, url, htmx=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 403
    assert response.headers["HX-Retarget"] == "#flashes"
    assert "HX-Request" in response.headers["Vary"]
    assert "You do not have permission to open this page." in html and 'role="alert"' in html
    assert "<html" not in html


@pytest.mark.parametrize("method, url", USER_ROUTES, ids=[f"{m} {u}" for m, u in USER_ROUTES])
def test_manager_gets_403_on_users(actions, method, url):
    actions.login(Role.MANAGER.value)
    response = request(actions, method, url)
    assert response.status_code == 403
    assert "You do not have permission" in response.get_data(as_text=True)


@pytest.mark.parametrize("role", [Role.MANAGER.value, Role.ADMIN.value])
@pytest.mark.parametrize("method, url", OTHER_ROUTES, ids=[f"{m} {u}" for m, u in OTHER_ROUTES])
def test_managers_and_admins_pass_the_role_check(actions, role, method, url):
    actions.login(role)
    response = request(actions, method, url)
    # With no such object the view answers 404; an empty form 422; either way not a 403 or a crash.
    assert response.status_code in (200, 303, 404, 422), response.status_code


@pytest.mark.parametrize("method, url", USER_ROUTES, ids=[f"{m} {u}" for m, u in USER_ROUTES])
def test_admin_passes_the_role_check_on_users(actions, method, url):
    actions.login(Role.ADMIN.value)
    assert request(actions, method, url).status_code in (200, 303, 404, 422)


@pytest.mark.parametrize("role, urls", [
    (Role.ADMIN.value, ["/manage/providers/", "/manage/organizations/", "/manage/users/", "/manage/audit/"]),
    (Role.MANAGER.value, ["/manage/providers/", "/manage/organizations/", "/manage/audit/"]),
])
def test_index_pages_open_for_their_roles(client, actions, role, urls):
    actions.login(role)
    for url in urls:
        assert client.get(url).status_code == 200, url


@pytest.mark.parametrize("method, url", ROUTES, ids=ids)
def test_anonymous_is_sent_to_sign_in(client, actions, method, url):
    actions.user()  # past the first-run setup
    if method == "GET":
        response = client.get(url)
    else:
        response = client.post(url, data={"csrf_token": actions.form_token("/login")})
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith("/login?next=")
    if method == "GET":
        assert location.endswith(url.replace("/", "%2F"))


@pytest.mark.parametrize("method, url", ROUTES, ids=ids)
def test_anonymous_htmx_request_loads_the_sign_in_page(client, actions, method, url):
    actions.user()
    headers = {"HX-Request": "true", "HX-Current-URL": "http://localhost/manage/providers/?q=1"}
    if method == "POST":
        headers["X-CSRFToken"] = actions.form_token("/login")
    response = client.open(url, method=method, headers=headers)
    # A redirect would make htmx swap the sign-in page into the fragment's place.
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/login?next=%2Fmanage%2Fproviders%2F%3Fq%3D1"
    assert response.get_data() == b""


@pytest.mark.parametrize("role, visible, hidden", [
    (Role.ADMIN.value, ["Manage", "Workspace providers", "Organizations", "Users", "Audit log"], []),
    (Role.MANAGER.value, ["Manage", "Workspace providers", "Organizations", "Audit log"], ["Users"]),
    (Role.MEMBER.value, ["Workspaces"], ["Manage", "Workspace providers", "Users", "Audit log"]),
])
def test_navigation_shows_manage_only_to_those_allowed(client, actions, role, visible, hidden):
    actions.login(role)
    html = client.get("/workspaces/").get_data(as_text=True)
    nav = re.search(r'<nav aria-label="Main">(.*?)</nav>', html, re.S).group(1)
    for name in visible:
        assert f">{name}<" in nav, name
    for name in hidden:
        assert f">{name}<" not in nav, name
