"""The app under gunicorn behind Debian's nginx, configured with the README's blocks, under
/provider-admin/ (SPEC §6, §9): the trusted header only as nginx sets it, the client's address
and scheme as nginx saw them, and the URLs the app gives out (redirects, the API's Location
headers and OpenAPI server, the single sign-on redirect URI) under the prefix.

Three server blocks in one nginx: `plain` and `tls` run the README's plain block (over http
and https), `sso` the block whose `auth_request` asks tests.nginx.AuthServer. The app trusts
the header from 127.0.0.1, nginx's address; the tests reach nginx and the app from other
loopback addresses (127.0.0.2, 127.0.0.3) where a client must not be trusted.
"""
import html
import re
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import trustme
from requests.adapters import HTTPAdapter

from provider_admin.extensions import db
from provider_admin.models import AuditEvent, Role
from provider_admin.tokens import service as token_service

from .conftest import ENCRYPTION_KEY, PASSWORD
from .nginx import (PREFIX, TICKET_COOKIE, AuthServer, Nginx, Server, gunicorn, readme_blocks, readme_location,
                    readme_sso_locations, require_nginx)
from .oidc import idp, query, sso_config  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("app_context")

APP = {"SECRET_KEY": "test-secret", "ENCRYPTION_KEY": ENCRYPTION_KEY, "PROXY_FIX": True,
       "TRUSTED_HEADER": "X-Forwarded-Email", "TRUSTED_PROXIES": "127.0.0.1"}
CLIENT = "127.0.0.3"  # where the tests' client connects from, as nginx sees it


class FromAddress(HTTPAdapter):
    """Connections from a chosen loopback address (the whole of 127.0.0.0/8 is this machine)."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, source_address=(self.address, 0), **kwargs)


@dataclass
class Site:
    app_url: str  # gunicorn, straight
    servers: dict[str, Server]
    ca_file: str  # the CA of the https server's certificate
    auth: AuthServer

    def url(self, server: str, path: str = "/") -> str:
        return f"{self.servers[server].origin}{PREFIX}{path}"

    def client(self, source: str = CLIENT, ticket: str | None = None) -> requests.Session:
        session = requests.Session()
        session.mount("http://", FromAddress(source))
        session.mount("https://", FromAddress(source))
        session.trust_env = False  # else REQUESTS_CA_BUNDLE (or a proxy) of the environment wins
        session.verify = self.ca_file
        if ticket:
            session.cookies.set(TICKET_COOKIE, ticket)
        return session


@pytest.fixture
def site_config():
    """The app's settings for gunicorn; a test class changes them by overriding this."""
    return APP


@pytest.fixture
def site(database_url, site_config, tmp_path):
    require_nginx()
    with AuthServer() as auth, gunicorn(site_config, database_url, tmp_path) as app_url:
        ca, ca_file = trustme.CA(), tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        servers = {"plain": Server(readme_location(app_url)), "tls": Server(readme_location(app_url), tls=ca),
                   "sso": Server(readme_sso_locations(app_url, auth.url))}
        with Nginx(tmp_path / "nginx", list(servers.values())):
            yield Site(app_url, servers, str(ca_file), auth)


def _login_form(session: requests.Session, url: str) -> dict:
    page = session.get(url)
    assert page.status_code == 200, page.text
    return {"csrf_token": re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text).group(1)}


def _sign_in(site: Site, session: requests.Session, server: str, user, headers=()) -> requests.Response:
    """Sign in with the form, as a browser would: over https the CSRF check wants a Referer of
    the same origin, the one the browser asked for (X-Forwarded-Host with its port)."""
    url = site.url(server, "/login")
    form = _login_form(session, url)
    return session.post(url, data={**form, "email": user.email, "password": PASSWORD}, allow_redirects=False,
                        headers={"Referer": url, **dict(headers)})


def _session_cookie(set_cookie: str):
    cookie = SimpleCookie()
    cookie.load(set_cookie)
    return cookie["session"]


def _where(url: str) -> tuple[str, dict]:
    """A redirect's path and query."""
    location = urlsplit(url)
    return location.path, {k: v[0] for k, v in parse_qs(location.query).items()}


# --- the README's blocks ---------------------------------------------------------------

def test_the_readme_has_the_two_blocks_and_the_sso_one_repeats_every_header():
    # A location that sets any proxy_set_header drops those around it: the sso block must
    # repeat each header of the plain one, the e-mail header set from the answer instead.
    plain, sso = readme_blocks()

    def headers(block):
        return dict(re.findall(r"^\s*proxy_set_header (\S+) (\S+);", block, re.M))

    assert headers(plain)["X-Forwarded-Prefix"] == PREFIX and headers(plain)["X-Forwarded-Email"] == '""'
    assert headers(sso)["X-Forwarded-Email"] == "$email"
    assert {k: v for k, v in headers(plain).items() if k != "X-Forwarded-Email"}.items() <= headers(sso).items()


# --- the trusted header ------------------------------------------------------------------

def test_the_header_nginx_sets_signs_the_user_in(site, actions):
    admin = actions.user(Role.ADMIN.value)
    browser = site.client(ticket=site.auth.ticket(admin.email))
    page = browser.get(site.url("sso", "/manage/users/"), allow_redirects=False)
    assert page.status_code == 200 and f"{admin.username} · Site admin" in page.text
    assert site.auth.asked[-1]["X-Forwarded-Uri"] == f"{PREFIX}/manage/users/"


def test_a_client_cannot_name_someone_else_through_nginx(site, actions):
    member, admin = actions.user(Role.MEMBER.value), actions.user(Role.ADMIN.value)
    browser = site.client(ticket=site.auth.ticket(member.email))
    forged = {"X-Forwarded-Email": admin.email}
    assert browser.get(site.url("sso", "/manage/users/"), headers=forged, allow_redirects=False).status_code == 403
    page = browser.get(site.url("sso", "/workspaces/"), headers=forged, allow_redirects=False)
    assert page.status_code == 200 and f"{member.username} · Member" in page.text


@pytest.mark.parametrize("server", ["sso", "plain"])
def test_a_forged_header_is_dropped_where_nginx_has_no_email_to_set(site, actions, server):
    # sso: the intranet signed the client in as nobody in particular (an empty $email);
    # plain: the location that does not sign in by header.
    admin = actions.user(Role.ADMIN.value)
    browser = site.client(ticket=site.auth.ticket(None))
    answer = browser.get(site.url(server, "/manage/users/"), headers={"X-Forwarded-Email": admin.email},
                         allow_redirects=False)
    assert answer.status_code == 302
    assert _where(answer.headers["Location"]) == (f"{PREFIX}/login", {"next": f"{PREFIX}/manage/users/"})


def test_nginx_lets_nobody_through_whom_the_intranet_did_not_sign_in(site, actions):
    admin = actions.user(Role.ADMIN.value)
    answer = site.client().get(site.url("sso", "/manage/users/"), headers={"X-Forwarded-Email": admin.email},
                               allow_redirects=False)
    assert answer.status_code == 401 and "nginx" in answer.text


def test_the_header_is_believed_only_from_the_proxys_address(site, actions):
    admin = actions.user(Role.ADMIN.value)
    forged = {"X-Forwarded-Email": admin.email, "X-Forwarded-For": "127.0.0.1"}
    elsewhere = site.client(source="127.0.0.2").get(f"{site.app_url}/manage/users/", headers=forged,
                                                     allow_redirects=False)
    assert elsewhere.status_code == 302 and _where(elsewhere.headers["Location"])[0] == "/login"
    # The same request from nginx's address is believed: the socket's address is the difference.
    proxy = site.client(source="127.0.0.1").get(f"{site.app_url}/manage/users/", headers=forged,
                                                 allow_redirects=False)
    assert proxy.status_code == 200 and admin.username in proxy.text


# --- the client's address and scheme -------------------------------------------------------

def test_the_audit_log_records_the_client_address_nginx_saw(site, actions):
    user = actions.user(Role.MEMBER.value)
    browser = site.client(source=CLIENT)
    answer = _sign_in(site, browser, "plain", user, headers={"X-Forwarded-For": "203.0.113.66"})
    assert answer.status_code == 303 and answer.headers["Location"] == f"{PREFIX}/"
    db.session.expire_all()
    event = db.session.scalar(db.select(AuditEvent).filter_by(action="auth.sign_in"))
    assert event.changes == {"address": CLIENT}


def test_the_session_cookie_is_secure_over_https_and_scoped_to_the_prefix(site, actions):
    user = actions.user(Role.MEMBER.value)
    cookies = {}
    for server in ("tls", "plain"):
        browser = site.client()
        answer = _sign_in(site, browser, server, user)
        assert answer.status_code == 303 and answer.headers["Location"] == f"{PREFIX}/", answer.text
        cookies[server] = answer.headers["Set-Cookie"]
        assert browser.get(site.url(server, "/workspaces/"), allow_redirects=False).status_code == 200
    assert _session_cookie(cookies["tls"])["secure"] and not _session_cookie(cookies["plain"])["secure"]
    assert _session_cookie(cookies["tls"])["path"] == _session_cookie(cookies["plain"])["path"] == PREFIX


def test_without_a_prefix_the_session_cookie_stays_at_the_root(client, actions):
    actions.user(Role.ADMIN.value)
    answer = client.get("/login")
    assert answer.status_code == 200 and _session_cookie(answer.headers["Set-Cookie"])["path"] == "/"


# --- redirects and the API --------------------------------------------------------------------

def test_a_fragment_asked_for_while_signed_out_sends_htmx_to_sign_in_under_the_prefix(site, actions):
    actions.user(Role.ADMIN.value)  # past the first-run setup
    answer = site.client().get(site.url("plain", "/manage/providers/status"), allow_redirects=False, headers={
        "HX-Request": "true", "HX-Current-URL": site.url("plain", "/manage/providers/?page=2")})
    assert answer.status_code == 401
    assert _where(answer.headers["HX-Redirect"]) == (f"{PREFIX}/login", {"next": f"{PREFIX}/manage/providers/?page=2"})


def test_the_api_under_the_prefix(site, actions):
    manager = actions.user(Role.MANAGER.value)
    _, secret = token_service.create(manager, "ci", 7, read_only=False)
    api = site.client()
    api.headers["Authorization"] = f"Bearer {secret}"
    created = api.post(site.url("plain", "/api/v1/organizations"), json={"name": "Platform"})
    assert created.status_code == 201, created.text
    location = created.headers["Location"]
    assert re.fullmatch(rf"{PREFIX}/api/v1/organizations/\d+", location)
    assert api.get(site.servers["plain"].origin + location).json()["name"] == "Platform"
    missing = api.get(site.url("plain", "/api/v1/organizations/99999"))
    assert missing.status_code == 404 and missing.json()["instance"] == f"{PREFIX}/api/v1/organizations/99999"
    document = api.get(site.url("plain", "/api/v1/openapi.json")).json()
    assert document["servers"] == [{"url": PREFIX}]
    assert f"{PREFIX}/api/v1/organizations" == document["servers"][0]["url"] + "/api/v1/organizations"
    assert "/api/v1/organizations" in document["paths"]


class TestSingleSignOn:
    @pytest.fixture
    def site_config(self, idp):
        return {**APP, **sso_config(idp)}

    def test_the_redirect_uris_keep_the_prefix_host_and_port(self, site, idp, actions):
        actions.user(Role.ADMIN.value)  # past the first-run setup
        idp.set_user("ada", email="ada@example.com", email_verified=True, groups=["platform-team"])
        browser = site.client()
        start = browser.get(site.url("plain", "/oidc/login"), allow_redirects=False)
        assert start.status_code == 302, start.text
        assert query(start.headers["Location"])["redirect_uri"] == site.url("plain", "/oidc/callback")
        back = idp.authorize(start.headers["Location"], "ada")
        assert back.startswith(site.url("plain", "/oidc/callback?"))
        signed_in = browser.get(back, allow_redirects=False)
        assert signed_in.status_code == 303 and signed_in.headers["Location"].startswith(f"{PREFIX}/")
        page = browser.get(site.url("plain", "/manage/providers/"), allow_redirects=False)
        assert page.status_code == 200 and "Site manager" in page.text
        # Sign-out sends the browser on to the provider, which sends it back to the sign-in page.
        token = re.search(r'"X-CSRFToken": "([^"]+)"', page.text).group(1)
        signed_out = browser.post(site.url("plain", "/logout"), data={"csrf_token": token}, allow_redirects=False)
        onward = html.unescape(re.search(r'<meta http-equiv="refresh" content="0; url=([^"]+)">',
                                         signed_out.text).group(1))
        assert onward.startswith(f"{idp.url}/oauth2/end_session?")
        assert query(onward)["post_logout_redirect_uri"] == site.url("plain", "/login")
