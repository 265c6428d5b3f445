"""Embedding in a portal (SPEC §9): FRAME_ANCESTORS checked at start and turned into headers
and cookie attributes, and the read-only status view /embed/providers with its poll."""
import html
import re

import pytest

from provider_admin import create_app, framing
from provider_admin.extensions import db
from provider_admin.models import Role

from .conftest import ENCRYPTION_KEY, PASSWORD
from .test_security_headers import assert_secure_headers, policy
from .test_sessions import set_cookie_header

STATUS = "/embed/providers"
PORTAL = "https://portal.example.com"


@pytest.fixture
def make_app(database_url):
    """A second app on the test database, built with the given settings."""
    def make(**config):
        return create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url, "AUTO_MIGRATE": False,
                           "SECRET_KEY": "test-secret", "ENCRYPTION_KEY": ENCRYPTION_KEY,
                           "RUN_SCHEDULER": False, **config})
    return make


# The setting and its headers ----------------------------------------------------------------

@pytest.mark.parametrize("setting, ancestors, x_frame_options", [
    ("'self'", "'self'", "SAMEORIGIN"),
    ("'none'", "'none'", "DENY"),
    ("", "'none'", "DENY"),
    (PORTAL, PORTAL, None),
    ("'self', HTTPS://Portal.Example.com/ https://*.intranet.example:8443",
     "'self' https://portal.example.com https://*.intranet.example:8443", None),
    (["'self'", "http://127.0.0.1:8080"], "'self' http://127.0.0.1:8080", None),
])
def test_each_form_of_the_setting_gives_its_headers(make_app, setting, ancestors, x_frame_options):
    app = make_app(FRAME_ANCESTORS=setting)
    response = app.test_client().get("/login")
    assert_secure_headers(response)
    assert policy(response)["frame-ancestors"] == ancestors
    assert response.headers.get("X-Frame-Options") == x_frame_options


@pytest.mark.parametrize("setting, says", [
    ("*", "would let any site frame the app"),
    ("https:", "would let any site frame the app"),
    ("self", "with its single quotes"),
    ("'none' https://portal.example.com", "stands alone"),
    ("https://portal.example.com/home", "has a path"),
    ("ftp://portal.example.com", "is not an origin"),
    ("portal.example.com", "is not an origin"),
    ("https://portal.example.com:99999", "port outside"),
    ("https://user@portal.example.com", "is not an origin"),
    ("https://portal.example.com;script-src", "is not an origin"),
])
def test_a_wrong_setting_stops_the_start_naming_it(make_app, setting, says):
    with pytest.raises(ValueError, match=re.escape(framing.SETTING)) as refused:
        make_app(FRAME_ANCESTORS=setting)
    assert says in str(refused.value)


# Cookies ---------------------------------------------------------------------------------------

@pytest.fixture
def someone(actions):
    """A user, so that the sign-in page is served (not the first-account page)."""
    return actions.user(Role.MEMBER.value)


def test_cookies_stay_lax_while_only_the_app_frames_itself(make_app, someone):
    response = make_app().test_client().get("/login")
    assert "SameSite=Lax" in set_cookie_header(response) and "Secure" not in set_cookie_header(response)


def test_framed_by_a_portal_the_session_cookie_is_samesite_none_and_secure(make_app, someone):
    app = make_app(FRAME_ANCESTORS=f"'self' {PORTAL}")
    for base_url in ("http://localhost", "https://localhost"):  # Secure even over http: None needs it
        cookie = set_cookie_header(app.test_client().get("/login", base_url=base_url))
        assert "SameSite=None" in cookie and "; Secure" in cookie and "HttpOnly" in cookie
        assert "Partitioned" not in cookie


def test_partitioned_cookies_when_asked_for(make_app, someone):
    app = make_app(FRAME_ANCESTORS=PORTAL, SESSION_COOKIE_PARTITIONED=True)
    cookie = set_cookie_header(app.test_client().get("/login", base_url="https://localhost"))
    assert "Partitioned" in cookie and "SameSite=None" in cookie and "; Secure" in cookie


def test_csrf_still_holds_for_a_framed_app_over_https(make_app, someone):
    """The frame's forms post from the app's own pages: the token and flask-wtf's https check of
    the Referer (same origin as the app) pass; a post without the token, or from another
    origin, is refused as before."""
    user, client = someone, make_app(FRAME_ANCESTORS=PORTAL).test_client()
    page = client.get("/login", base_url="https://localhost").text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    form = {"email": user.email, "password": PASSWORD}
    assert client.post("/login", data=form, base_url="https://localhost").status_code == 400
    assert client.post("/login", data={**form, "csrf_token": token}, base_url="https://localhost",
                       headers={"Referer": f"{PORTAL}/home"}).status_code == 400
    signed_in = client.post("/login", data={**form, "csrf_token": token}, base_url="https://localhost",
                            headers={"Referer": "https://localhost/login"})
    assert signed_in.status_code == 303
    assert client.get(STATUS, base_url="https://localhost").status_code == 200


# The status view ----------------------------------------------------------------------------

@pytest.fixture
def world(make_org, make_provider, actions):
    """Two organizations with a provider each; alice belongs to the first only."""
    alice = actions.user(Role.MEMBER.value, username="alice")
    acme, other = make_org("Acme", members=[alice]), make_org("Globex")
    east = make_provider("east-acme", organizations=[acme], status="ready")
    west = make_provider("west-globex", organizations=[other], status="error",
                         status_message="The cluster refused the token.")
    return alice, east, west


def sign_in_as(client, actions, user):
    token = actions.form_token("/login")
    assert client.post("/login", data={"email": user.email, "password": PASSWORD,
                                       "csrf_token": token}).status_code == 303


def tiles(page: str) -> list[str]:
    return [html.unescape(re.sub(r"<[^>]+>", "", name)).strip()
            for name in re.findall(r'<h2 class="tile-name">(.*?)</h2>', page, re.S)]


def test_a_member_sees_only_the_providers_of_their_organizations(client, actions, world):
    alice, east, west = world
    sign_in_as(client, actions, alice)
    response = client.get(STATUS)
    assert response.status_code == 200
    assert tiles(response.text) == ["east-acme"]
    assert "west-globex" not in response.text and "refused the token" not in response.text
    assert 'class="badge badge-ready">Ready<' in response.text
    assert "<a " not in response.text.split('id="provider-status"')[1]  # no links for a member


def test_a_member_without_organizations_sees_none(client, actions, world):
    sign_in_as(client, actions, actions.user(Role.MEMBER.value, username="bob"))
    page = client.get(STATUS).text
    assert tiles(page) == [] and "No workspace providers to show." in page


@pytest.mark.parametrize("role", [Role.MANAGER.value, Role.ADMIN.value])
def test_managers_see_every_provider_with_a_link_out_of_the_frame(client, actions, world, role):
    _, east, west = world
    actions.login(role)
    page = client.get(STATUS).text
    assert tiles(page) == ["east-acme", "west-globex"]
    assert "The cluster refused the token." in page and 'badge-error">Error<' in page
    link = re.search(rf'<a href="/manage/providers/{west.id}"([^>]*)>west-globex</a>', page)
    assert link and 'target="_blank"' in link.group(1) and 'rel="noopener"' in link.group(1)


def test_it_is_read_only_without_navigation(client, actions, world):
    actions.login(Role.ADMIN.value)
    page = client.get(STATUS).text
    assert "<form" not in page and "<nav" not in page and 'class="topbar"' not in page
    assert "csrf" not in page.lower() and "hx-post" not in page
    assert "Sign out" not in page and "Workspaces</a>" not in page


def test_a_cordoned_provider_says_so(client, actions, world):
    _, east, _ = world
    east.cordoned, east.cordon_reason = True, "Node pool upgrade"
    db.session.commit()
    actions.login(Role.MANAGER.value)
    assert re.search(r'badge-ready">Ready</span> <span class="tag tag-cordoned"[^>]*>Cordoned<',
                     client.get(STATUS).text)


def test_a_hostile_error_message_is_escaped_and_short(client, actions, make_provider):
    hostile = '<img src=x onerror="alert(1)"><script>alert(2)</script>' + "x" * 400
    make_provider("evil", status="error", status_message=hostile)
    actions.login(Role.MANAGER.value)
    page = client.get(STATUS).text
    assert "<img src=x" not in page and "<script>alert" not in page
    message = re.search(r'<p class="status-message">(.*?)</p>', page, re.S).group(1)
    assert message.startswith("&lt;img src=x onerror=&#34;alert(1)&#34;&gt;&lt;script&gt;")
    assert len(html.unescape(message)) <= 160 and message.endswith("...")


def test_wall_screens_get_large_type(client, actions, world):
    actions.login(Role.MANAGER.value)
    assert '<body class="embedded embedded-large">' in client.get(STATUS, query_string={"size": "large"}).text
    assert '<body class="embedded">' in client.get(STATUS).text


def test_signed_out_it_offers_sign_in_in_a_new_tab(client, world):
    response = client.get(STATUS)
    assert response.status_code == 401
    assert tiles(response.text) == [] and "east-acme" not in response.text
    link = re.search(r'<a class="button primary" href="/login" ([^>]*)>Sign in</a>', response.text)
    assert link and 'target="_blank"' in link.group(1) and 'rel="noopener"' in link.group(1)
    assert "<form" not in response.text and 'class="topbar"' not in response.text


# The poll -----------------------------------------------------------------------------------

def poll_url(page: str) -> str:
    return html.unescape(re.search(r'<section id="provider-status"[^>]*hx-get="([^"]+)"', page).group(1))


def test_the_poll_answers_204_until_a_status_changes(client, actions, world):
    alice, east, west = world
    sign_in_as(client, actions, alice)
    url = poll_url(client.get(STATUS).text)
    assert actions.htmx_get(url).status_code == 204
    west.status, west.status_message = "pending", None  # not alice's to see: nothing changes for her
    db.session.commit()
    assert actions.htmx_get(url).status_code == 204
    east.status, east.status_message = "error", "Credentials rejected (401)."
    db.session.commit()
    changed = actions.htmx_get(url)
    assert changed.status_code == 200 and "HX-Request" in changed.headers["Vary"]
    assert changed.text.lstrip().startswith('<section id="provider-status"')  # the fragment, not a page
    assert 'badge-error">Error<' in changed.text and "Credentials rejected (401)." in changed.text
    assert poll_url(changed.text) != url and actions.htmx_get(poll_url(changed.text)).status_code == 204


def test_a_provider_joining_the_members_organization_shows_up(client, actions, world, make_org):
    alice, east, west = world
    sign_in_as(client, actions, alice)
    url = poll_url(client.get(STATUS).text)
    west.organizations.append(alice.organizations[0])
    db.session.commit()
    assert tiles(actions.htmx_get(url).text) == ["east-acme", "west-globex"]


def test_a_fingerprint_of_another_scope_is_not_taken(client, actions, world):
    """A member who sends the fingerprint of everything (a manager's) still gets only theirs."""
    alice, _, _ = world
    actions.login(Role.MANAGER.value)
    managers = poll_url(client.get(STATUS).text)
    client.post("/logout", data={"csrf_token": actions.token()})
    sign_in_as(client, actions, alice)
    answer = actions.htmx_get(managers)
    assert answer.status_code == 200 and tiles(answer.text) == ["east-acme"]


def test_signed_out_the_prompt_polls_for_a_session_and_a_list_turns_into_it(client, actions, world):
    alice, _, _ = world
    response = client.get(STATUS)
    prompt = poll_url(response.text)
    assert actions.htmx_get(prompt).status_code == 204
    sign_in_as(client, actions, alice)
    board = actions.htmx_get(prompt)
    assert board.status_code == 200 and tiles(board.text) == ["east-acme"]
    client.post("/logout", data={"csrf_token": actions.token()})
    ended = actions.htmx_get(poll_url(board.text))
    assert ended.status_code == 200 and "Sign in</a>" in ended.text and "east-acme" not in ended.text
