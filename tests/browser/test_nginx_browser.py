"""Chromium through Debian's nginx, configured with the README's blocks, under /provider-admin/
(SPEC §6, §9): every page, fragment, redirect, poll and download, and the sign-in by the
header nginx sets.

The pages are opened by their nginx address; every request a page makes is recorded, and
each must go to nginx under the prefix and succeed. The app itself listens elsewhere (the
live server), so a URL that forgot the prefix, or a relative one resolved against the app's
own address, shows up as a request that left the prefix.
"""
import re
from dataclasses import dataclass, field

import pytest

from provider_admin import crypto
from provider_admin.extensions import db
from provider_admin.models import Role, Workspace
from provider_admin.tokens import service as token_service
from tests.conftest import PASSWORD
from tests.nginx import (PREFIX, TICKET_COOKIE, AuthServer, Nginx, Server, readme_location, readme_sso_locations,
                         require_nginx)

from .conftest import create_opener, create_provider, expect, no_reload, open_menu, provider_row

pytestmark = pytest.mark.browser

# Routes not opened as pages: files (their own test), the JSON API (tests/test_nginx.py), the
# single sign-on (not configured here; tests/test_nginx.py), a break-glass link (made on the
# server for one sign-in), the static files (every page loads them).
NOT_PAGES = {"providers.manifest", "oidc.login", "oidc.callback", "auth.break_glass", "static",
             "metrics.metrics"}  # read by Prometheus from the listed addresses (tests/test_metrics.py)


@pytest.fixture
def app_config(app_config):
    return {**app_config, "PROXY_FIX": True, "TRUSTED_HEADER": "X-Forwarded-Email", "TRUSTED_PROXIES": "127.0.0.1"}


@dataclass
class Proxy:
    plain: Server
    sso: Server
    auth: AuthServer
    requests: list = field(default_factory=list)  # (method, url, status or failure) of every page's

    def url(self, path: str = "/", server: str = "plain") -> str:
        return f"{getattr(self, server).origin}{PREFIX}{path}"

    def watch(self, page) -> None:
        """Record every request the page makes, with its answer's status or its failure."""
        page.on("response", lambda r: self.requests.append((r.request.method, r.url, r.status)))
        page.on("requestfailed", lambda r: self.requests.append((r.method, r.url, r.failure)))

    def strays(self) -> list:
        """The requests that left nginx's prefix or failed (a download ends as "aborted" in a
        page that stays: it went to a file). Redirects (3xx) are followed, and checked there."""
        origins = (self.url("/"), self.url("/", "sso"))
        return [(method, url, status) for method, url, status in self.requests
                if not url.startswith(origins) or isinstance(status, str) and status != "net::ERR_ABORTED"
                or isinstance(status, int) and status >= 400]


@pytest.fixture
def proxy(live_server, tmp_path):
    require_nginx()
    with AuthServer() as auth:
        plain = Server(readme_location(live_server))
        sso = Server(readme_sso_locations(live_server, auth.url))
        with Nginx(tmp_path / "nginx", [plain, sso]):
            proxy = Proxy(plain, sso, auth)
            yield proxy
            assert proxy.requests, "no request was recorded: was the page watched?"
            assert proxy.strays() == []


@pytest.fixture
def signed_in(page, proxy, actions):
    """An admin, signed in through nginx with the form; the page is watched from the start."""

    def sign_in(role=Role.ADMIN.value, page=page):
        user = actions.user(role)
        proxy.watch(page)
        page.goto(proxy.url("/login"))
        page.get_by_label("Email").fill(user.email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: url.startswith(proxy.url("/")) and "/login" not in url)
        return user

    return sign_in


@pytest.fixture
def seeded(make_org, make_provider):
    """One thing of each kind, for the pages that show one: their URLs' arguments."""

    def seed(admin):
        acme = make_org("Acme", members=[admin])
        east = make_provider("east", organizations=[acme], status="ready", cluster_address="https://127.0.0.1:9",
                             credentials_encrypted=crypto.encrypt('{"token": "t"}'), credentials_kind="token")
        workspace = Workspace(name="dev", owner=admin, organization=acme, provider=east, image="busybox",
                              cpu="1", memory="1Gi", disk="1Gi", status="failed")
        db.session.add(workspace)
        token, _ = token_service.create(admin, "ci", 7, read_only=True)
        db.session.commit()
        return {"provider_id": east.id, "workspace_id": workspace.id, "organization_id": acme.id,
                "user_id": admin.id, "token_id": token.id}

    return seed


def _page_urls(app, ids: dict) -> list[tuple[str, str]]:
    """(endpoint, path) of every page: the GET routes that are not the API, files or sign-on."""
    with app.test_request_context():
        from flask import url_for

        return sorted((rule.endpoint, url_for(rule.endpoint, **{arg: ids[arg] for arg in rule.arguments}))
                      for rule in app.url_map.iter_rules()
                      if "GET" in rule.methods and rule.endpoint not in NOT_PAGES
                      and (not rule.endpoint.startswith("api.") or rule.endpoint == "api.reference"))


# The attributes through which a page names a URL the browser will fetch or follow.
LINKS = """() => [...document.querySelectorAll(
    "[href], [src], form[action], [hx-get], [hx-post], [hx-put], [hx-patch], [hx-delete]")].flatMap(el =>
  ["href", "src", "action", "hx-get", "hx-post", "hx-put", "hx-patch", "hx-delete"]
    .filter(name => el.hasAttribute(name)).map(name => [name, new URL(el.getAttribute(name), document.baseURI).href]))"""


def test_every_page_answers_through_nginx_with_every_link_under_the_prefix(app, page, proxy, signed_in, seeded):
    admin = signed_in()
    pages = _page_urls(app, seeded(admin))
    assert len(pages) > 20 and {"providers.show", "workspaces.show", "api.reference"} <= {name for name, _ in pages}
    for endpoint, path in pages:
        answer = page.goto(proxy.url(path))
        assert answer.status == 200, f"{endpoint} {path}: {answer.status}"
        assert page.url.startswith(proxy.url("/")), f"{endpoint} {path} went to {page.url}"
        page.wait_for_load_state("networkidle")
        # Links to other sites are theirs; every one to this machine goes through the prefix.
        outside = [(name, url) for name, url in page.evaluate(LINKS)
                   if url.startswith("http://127.0.0.1") and not url.startswith(proxy.url("/"))]
        assert outside == [], f"{endpoint} {path} links outside {PREFIX}/"
    visited = {url.removeprefix(proxy.url("")).split("?")[0] for _, url, _ in proxy.requests}
    assert {"/static/css/app.css", "/static/js/app.js"} <= visited


def test_badges_refresh_through_nginx(app, page, proxy, signed_in, make_provider):
    provider = make_provider("east")
    app.config["POLL_SECONDS"] = 1  # read when the page renders its poll element
    signed_in()
    page.goto(proxy.url("/manage/providers/"))
    row = provider_row(page, "east")
    expect(row.get_by_text("Pending", exact=True)).to_be_visible()

    unchanged = re.compile(re.escape(proxy.url("/manage/providers/status?")))
    with page.expect_response(lambda answer: unchanged.match(answer.url) and answer.status == 204):
        pass  # the poll has asked at least once, and nothing changed
    with no_reload(page):
        # What a scheduled check in another process writes (the database bumps the row's version).
        provider.status, provider.kube_version = "ready", "v1.33.1"
        db.session.commit()
        expect(row.get_by_text("Ready", exact=True)).to_be_visible()
        expect(row).to_contain_text("v1.33.1")
    polls = {(method, status) for method, url, status in proxy.requests
             if url.startswith(proxy.url("/manage/providers/status"))}
    assert {("GET", 204), ("GET", 200), ("POST", 200)} <= polls


def test_sign_in_comes_back_to_the_page_asked_for(page, proxy, actions):
    user = actions.user(Role.ADMIN.value)
    proxy.watch(page)
    page.goto(proxy.url("/manage/organizations/?page=1"))
    expect(page).to_have_url(proxy.url("/login?next=%2Fprovider-admin%2Fmanage%2Forganizations%2F%3Fpage%3D1"))
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(proxy.url("/manage/organizations/?page=1"))
    expect(page.get_by_role("heading", name="Organizations", level=1)).to_be_visible()


def test_a_plain_form_posts_and_redirects_under_the_prefix(new_page, proxy, signed_in):
    page = new_page(java_script_enabled=False)
    signed_in(page=page)
    page.goto(proxy.url("/manage/organizations/"))
    page.get_by_label("Name").fill("Platform")
    page.get_by_role("button", name="Create organization").click()
    expect(page).to_have_url(proxy.url("/manage/organizations/"))
    expect(page.get_by_role("link", name="Platform", exact=True)).to_be_visible()
    assert ("POST", proxy.url("/manage/organizations/"), 303) in proxy.requests


def test_htmx_redirects_and_pushed_urls_keep_the_prefix(page, proxy, signed_in, make_org, kube):
    make_org("Acme")
    signed_in()
    # From the list, the form opens in place and the save pushes the list's URL (HX-Push-Url).
    page.goto(proxy.url("/manage/providers/"))
    with no_reload(page):
        create_opener(page).click()
        expect(page).to_have_url(proxy.url("/manage/providers/new"))
        create_provider(page, "west", kube)
        expect(provider_row(page, "west")).to_be_visible()
    expect(page).to_have_url(proxy.url("/manage/providers/"))
    # A row's menu, its dialog and the change it posts (the CSRF token in htmx's header).
    row = provider_row(page, "west")
    with no_reload(page):
        open_menu(page, "west").get_by_role("menuitem", name="Cordon").click()
        page.get_by_role("dialog").get_by_label("Reason").fill("upgrade")
        page.get_by_role("dialog").get_by_role("button", name="Cordon", exact=True).click()
        expect(row).to_contain_text("Cordoned: upgrade")
    # On its own page, the save answers with HX-Redirect to the list.
    page.goto(proxy.url("/manage/providers/new"))
    create_provider(page, "north", kube)
    expect(provider_row(page, "north")).to_be_visible()
    expect(page).to_have_url(proxy.url("/manage/providers/"))


def test_a_poll_that_finds_the_session_ended_sends_the_page_to_sign_in(app, page, proxy, signed_in, make_provider):
    make_provider("east")
    app.config["POLL_SECONDS"] = 1
    signed_in()
    page.goto(proxy.url("/manage/providers/?page=1"))
    page.context.clear_cookies()  # the session ends (signed out elsewhere, or expired)
    # The poll's 401 carries HX-Redirect to the sign-in page, back to this page afterwards.
    expect(page).to_have_url(proxy.url("/login?next=%2Fprovider-admin%2Fmanage%2Fproviders%2F%3Fpage%3D1"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    # The refusals meant here (a second poll may have left before the page moved on).
    refused = [r for r in proxy.requests if r[2] == 401 and r[1].startswith(proxy.url("/manage/providers/status?"))]
    assert refused
    proxy.requests[:] = [r for r in proxy.requests if r not in refused]


def test_the_manifest_downloads_through_nginx(page, proxy, signed_in, make_provider):
    provider = make_provider("east")
    signed_in()
    page.goto(proxy.url(f"/manage/providers/{provider.id}"))
    with page.expect_download() as info:
        page.get_by_role("link", name="Download manifest").click()
    download = info.value
    assert download.url == proxy.url(f"/manage/providers/{provider.id}/manifest.yaml")
    assert download.suggested_filename == "provider-admin-east.yaml"
    assert "kind: Namespace" in open(download.path()).read()


def test_the_header_nginx_sets_signs_the_browser_in(browser, proxy, actions):
    admin = actions.user(Role.ADMIN.value)
    context = browser.new_context()
    try:
        context.add_cookies([{"name": TICKET_COOKIE, "value": proxy.auth.ticket(admin.email),
                              "url": proxy.sso.origin}])
        page = context.new_page()
        proxy.watch(page)
        page.goto(proxy.url("/manage/providers/", "sso"))
        expect(page.get_by_role("heading", name="Workspace providers", level=1)).to_be_visible()
        expect(page.locator(".who")).to_have_text(f"{admin.username} · Site admin")
        assert not any(re.search(r"/login\b", url) for _, url, _ in proxy.requests)
    finally:
        context.close()
