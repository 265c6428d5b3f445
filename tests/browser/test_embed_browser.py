"""The status view in a portal's frame, as a browser sees it (SPEC §9).

The app runs on http://localhost:PORT, the "portal" on http://127.0.0.1:OTHER: another
origin and another site, so the frame's requests are third-party ones. Chromium takes Secure
cookies from http://localhost (a secure context), so SameSite=None; Secure works here without
TLS. This Chromium blocks third-party cookies by default: a session made in a tab of its own
reaches the frame only in a profile that allows them (as an intranet's browser policy can),
and with Partitioned cookies (CHIPS) the frame keeps a session of its own, made in the frame.
With another origin in FRAME_ANCESTORS the browser refuses to render the app in the frame.
"""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from provider_admin.extensions import db
from provider_admin.models import Provider

from .conftest import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, expect
from ..conftest import PASSWORD

pytestmark = pytest.mark.browser

LIVE_MS = 15_000
FRAME = "iframe[title='Provider status']"


class Portal:
    """A plain HTTP server on its own origin whose one page frames `frame_url`."""

    def __init__(self):
        self.frame_url = "about:blank"
        portal = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = (f'<!doctype html><html lang="en"><head><title>Intranet portal</title></head><body>'
                        f'<h1>Intranet portal</h1><iframe title="Provider status" src="{portal.frame_url}" '
                        f'width="900" height="400"></iframe></body></html>').encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True, name="portal").start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def portal():
    server = Portal()
    yield server
    server.close()


@pytest.fixture
def allowed_origins(portal):
    return f"'self' {portal.origin}"


@pytest.fixture
def app_config(app_config, allowed_origins):
    return {**app_config, "POLL_SECONDS": 1, "FRAME_ANCESTORS": allowed_origins}


@pytest.fixture
def app_origin(live_server):
    """The app under the name localhost: another site than the portal's 127.0.0.1."""
    return live_server.replace("127.0.0.1", "localhost")


def _recording(context):
    context.set_default_timeout(TIMEOUT_MS)
    context.messages, context.errors = [], []
    return context


@pytest.fixture
def context(browser):
    """A fresh context as this Chromium makes it: third-party cookies blocked."""
    context = _recording(browser.new_context())
    yield context
    context.close()


@pytest.fixture
def context_allowing_third_party_cookies(browser, tmp_path):
    """A browser profile whose settings allow third-party cookies."""
    settings = tmp_path / "profile" / "Default" / "Preferences"
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps({"profile": {"block_third_party_cookies": False, "cookie_controls_mode": 0}}))
    context = _recording(browser.browser_type.launch_persistent_context(
        str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS))
    yield context
    context.close()


def open_portal(context, portal, app_origin):
    portal.frame_url = app_origin + "/embed/providers"
    page = context.new_page()
    page.on("console", lambda message: context.messages.append(message.text))
    page.on("pageerror", lambda error: context.errors.append(str(error)))
    page.goto(portal.origin + "/")
    return page


def sign_in(page, email):
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


@pytest.fixture
def world(make_org, make_provider, actions):
    org = make_org("Acme")
    member = actions.user("member", username="alice", organizations=[org])
    east = make_provider("east", organizations=[org], status="ready")
    make_provider("hidden-from-alice", status="ready")
    email, east_id = member.email, east.id
    db.session.remove()  # the test's own session holds nothing while the server's threads read
    return email, east_id


def wait_for_frame_refusal(page, context) -> None:
    """The browser says in the console that frame-ancestors refused the frame."""
    refusal = 'violates the following Content Security Policy directive: "frame-ancestors'
    for _ in range(TIMEOUT_MS // 100):
        if any(refusal in message for message in context.messages):
            return
        page.wait_for_timeout(100)
    assert any(refusal in message for message in context.messages), context.messages


def embedded_frame(page, app_origin):
    return next(f for f in page.frames if f.url.startswith(app_origin))


def test_the_portal_frames_the_view_the_session_works_and_badges_follow(
        context_allowing_third_party_cookies, portal, app_origin, world):
    context, (email, east_id) = context_allowing_third_party_cookies, world
    page = open_portal(context, portal, app_origin)
    frame = page.frame_locator(FRAME)
    link = frame.get_by_role("link", name="Sign in")
    expect(link).to_have_attribute("target", "_blank")
    with context.expect_page() as opened:
        link.click()
    tab = opened.value
    sign_in(tab, email)
    tab.wait_for_url(lambda url: "/login" not in url)
    # The frame's poll finds the session: its cookie goes with the frame's requests.
    tile = frame.locator(f"#provider-tile-{east_id}")
    expect(tile.get_by_role("heading", name="east")).to_be_visible(timeout=LIVE_MS)
    expect(tile.locator(".badge")).to_have_text("Ready")
    expect(frame.get_by_text("hidden-from-alice")).to_have_count(0)
    embedded_frame(page, app_origin).evaluate("window.__marker = 1")

    east = db.session.get(Provider, east_id)
    east.status, east.status_message = "error", "Credentials rejected (401): the token expired."
    db.session.commit()
    expect(tile.locator(".badge")).to_have_text("Error", timeout=LIVE_MS)
    expect(tile.locator(".status-message")).to_have_text("Credentials rejected (401): the token expired.")
    assert embedded_frame(page, app_origin).evaluate("window.__marker") == 1, "the frame was reloaded"
    assert not context.errors and not [m for m in context.messages if "Content Security Policy" in m]


class TestPartitionedCookies:
    @pytest.fixture
    def app_config(self, app_config):
        return {**app_config, "SESSION_COOKIE_PARTITIONED": True}

    def test_the_frame_keeps_a_session_of_its_own_where_third_party_cookies_are_blocked(
            self, context, portal, app_origin, world):
        email, east_id = world
        page = open_portal(context, portal, app_origin)
        frame = page.frame_locator(FRAME)
        link = frame.get_by_role("link", name="Sign in")
        expect(link).not_to_have_attribute("target", "_blank")
        link.click()
        sign_in(frame, email)  # in the frame, back to the status view
        tile = frame.locator(f"#provider-tile-{east_id}")
        expect(tile.locator(".badge")).to_have_text("Ready")
        assert embedded_frame(page, app_origin).url.endswith("/embed/providers")
        cookies = [c for c in context.cookies() if c["name"] == "session"]
        assert cookies and all(c["sameSite"] == "None" and c["secure"] for c in cookies)
        assert not context.errors


class TestAnotherPortal:
    @pytest.fixture
    def allowed_origins(self):
        return "'self' https://portal.example.com"

    def test_the_browser_refuses_to_render_the_view_in_its_frame(self, context, portal, app_origin, world):
        page = open_portal(context, portal, app_origin)
        expect(page.get_by_role("heading", name="Intranet portal")).to_be_visible()
        wait_for_frame_refusal(page, context)
        frame = page.frame_locator(FRAME)
        expect(frame.get_by_role("link", name="Sign in")).to_have_count(0)
        expect(frame.get_by_role("heading", name="Workspace providers")).to_have_count(0)
        assert not [f for f in page.frames if f.url.startswith(app_origin)]
