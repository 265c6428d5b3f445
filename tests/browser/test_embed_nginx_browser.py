"""The status view framed by an intranet portal, both behind Debian's nginx (SPEC §9): the app
under /provider-admin/ with the README's block, the portal on another origin of the same
host (another port), the way an intranet serves its pages next to the admin. From a listed
origin the frame renders and follows the badges; from an unlisted one the browser refuses it.

Same host, other port: another origin (what frame-ancestors compares) but the same site, so
the session cookie (SameSite=None; Secure, from http://127.0.0.1, a secure context) goes
with the frame's requests in a default browser profile.
"""
import pytest

from provider_admin.extensions import db
from provider_admin.models import Provider

from ..nginx import PREFIX, Nginx, Server, readme_location, require_nginx
from .conftest import TIMEOUT_MS, expect
from .test_embed_browser import sign_in, wait_for_frame_refusal, world  # noqa: F401  (world: a member, her provider and another)

pytestmark = pytest.mark.browser

LIVE_MS = 15_000
FRAME = "iframe[title='Provider status']"


@pytest.fixture
def servers():
    """The two server blocks, their ports chosen before the app is configured: the app's
    (its location is written once the app listens) and the portal's page."""
    app = Server("")
    frame = f"{app.origin}{PREFIX}/embed/providers"
    page = ('<!doctype html><html lang="en"><head><title>Intranet portal</title></head><body>'
            f'<h1>Intranet portal</h1><iframe title="Provider status" src="{frame}" width="900" height="400">'
            '</iframe></body></html>')
    portal = Server(f"    location = / {{\n        default_type text/html;\n        return 200 '{page}';\n    }}")
    return app, portal


@pytest.fixture
def allowed_origins(servers):
    return f"'self' {servers[1].origin}"


@pytest.fixture
def app_config(app_config, allowed_origins):
    return {**app_config, "POLL_SECONDS": 1, "FRAME_ANCESTORS": allowed_origins, "PROXY_FIX": True}


@pytest.fixture
def nginx(servers, live_server, tmp_path):
    require_nginx()
    app, portal = servers
    app.body = readme_location(live_server)
    with Nginx(tmp_path / "nginx", [app, portal]):
        yield app.origin + PREFIX, portal.origin


@pytest.fixture
def context(browser):
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    context.messages = []
    yield context
    context.close()


def portal_page(context, nginx):
    page = context.new_page()
    page.on("console", lambda message: context.messages.append(message.text))
    page.goto(nginx[1] + "/")
    return page


def test_the_portal_frames_the_view_through_nginx_and_its_badges_follow(context, nginx, world):
    app, _ = nginx
    email, east_id = world
    tab = context.new_page()
    tab.goto(app + "/login")
    sign_in(tab, email)
    tab.wait_for_url(lambda url: url.startswith(app) and "/login" not in url)

    page = portal_page(context, nginx)
    frame = page.frame_locator(FRAME)
    tile = frame.locator(f"#provider-tile-{east_id}")
    expect(tile.locator(".badge")).to_have_text("Ready")
    expect(frame.get_by_text("hidden-from-alice")).to_have_count(0)
    framed = next(f for f in page.frames if f.url.startswith(app))
    assert framed.url == app + "/embed/providers"
    framed.evaluate("window.__marker = 1")

    east = db.session.get(Provider, east_id)
    east.status, east.status_message = "error", "Credentials rejected (401): the token expired."
    db.session.commit()
    expect(tile.locator(".badge")).to_have_text("Error", timeout=LIVE_MS)
    expect(tile.locator(".status-message")).to_have_text("Credentials rejected (401): the token expired.")
    assert framed.evaluate("window.__marker") == 1, "the frame was reloaded"
    assert not [m for m in context.messages if "Content Security Policy" in m]


class TestAnUnlistedPortal:
    @pytest.fixture
    def allowed_origins(self):
        return "'self' https://portal.example.com"

    def test_the_browser_refuses_the_view_in_its_frame(self, context, nginx, world):
        app, _ = nginx
        page = portal_page(context, nginx)
        expect(page.get_by_role("heading", name="Intranet portal")).to_be_visible()
        wait_for_frame_refusal(page, context)
        framed = [f for f in page.frames if f.url.startswith(app)]
        assert all(not f.locator(".tiles, h1").count() for f in framed)
