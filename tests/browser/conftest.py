"""Browser fixtures: the real app on a live server, driven by Debian's Chromium through Playwright.

Playwright's own browser download cannot work here, so the tests launch the system Chromium
(PROVIDER_ADMIN_CHROMIUM overrides the path) and skip, with the reason, when it is missing.
"""
import logging
import os
import re
import shutil
import threading
import traceback
from contextlib import contextmanager
from pathlib import Path

import jinja2
import pytest
from flask import got_request_exception
from werkzeug.serving import make_server

from tests.conftest import PASSWORD

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture then skips, or fails where CI requires it
    expect = None

CHROMIUM = os.environ.get("PROVIDER_ADMIN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TIMEOUT_MS = 10000  # a page, a request or an expectation; CI machines are shared and busy


class _MemoryBytecodeCache(jinja2.BytecodeCache):
    """Compiled templates shared by the per-test apps (Jinja checks each source's checksum):
    compiling them again for every test's new app was a good part of a test's time."""

    def __init__(self):
        self.store = {}

    def load_bytecode(self, bucket):
        if bucket.key in self.store:
            bucket.bytecode_from_string(self.store[bucket.key])

    def dump_bytecode(self, bucket):
        self.store[bucket.key] = bucket.bytecode_to_string()


TEMPLATE_CACHE = _MemoryBytecodeCache()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so the page fixture knows about a failure."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def app_config(database_url, tmp_path):
    # The browser talks to 127.0.0.1:<random port>; SERVER_NAME="localhost" would 404 it.
    # Saves check the cluster at once: a short timeout keeps a stray check from stalling a test.
    return {"SERVER_NAME": None, "CHECK_TIMEOUT": 2.0}


@pytest.fixture(autouse=True)
def fast_password_hashing(monkeypatch):
    """Hash test passwords with one PBKDF2 round: scrypt costs ~0.2 s a hash (more on a busy CI
    runner) and every test signs in. Checking still goes through the real check_password_hash."""
    from werkzeug.security import generate_password_hash

    from provider_admin.models import people as models  # where User.set_password hashes

    monkeypatch.setattr(models, "generate_password_hash",
                        lambda password: generate_password_hash(password, "pbkdf2:sha256:1"))


@pytest.fixture
def live_server(app):
    """The app served on a free port from a daemon thread; yields its base URL.

    An exception in a view fails the test with its traceback (the browser would only
    show a 500 page), and the request log stays quiet unless something goes wrong.
    """
    failures = []

    def record(sender, exception, **extra):
        failures.append("".join(traceback.format_exception(exception)))

    got_request_exception.connect(record, app)
    app.jinja_env.bytecode_cache = TEMPLATE_CACHE
    werkzeug_log = logging.getLogger("werkzeug")
    level = werkzeug_log.level
    werkzeug_log.setLevel(logging.WARNING)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    # A short poll interval: shutdown() waits for it, at the end of every test.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="live-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    werkzeug_log.setLevel(level)
    got_request_exception.disconnect(record, app)
    assert not failures, "the server failed a request:\n" + "\n".join(failures)


def _unavailable(reason: str):
    """Skip, or fail where CI says the browser tests must run (PROVIDER_ADMIN_REQUIRE_BROWSER)."""
    if os.environ.get("PROVIDER_ADMIN_REQUIRE_BROWSER"):
        pytest.fail(f"{reason}, and PROVIDER_ADMIN_REQUIRE_BROWSER is set", pytrace=False)
    pytest.skip(f"{reason}: browser tests skipped")


@pytest.fixture(scope="session")
def browser():
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        _unavailable(f"Chromium not found at {CHROMIUM} (apt-get install chromium, "
                     "or set PROVIDER_ADMIN_CHROMIUM)")
    if expect is None:
        _unavailable("the playwright package is not installed")
    from playwright.sync_api import sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    except Exception as error:  # a broken or incompatible Chromium is reported, not hidden
        playwright.stop()
        pytest.fail(f"Chromium at {CHROMIUM} did not start: {error}")
    yield browser
    browser.close()
    playwright.stop()


@pytest.fixture
def new_page(browser, live_server, request):
    """Open a page in a fresh browser context; options go to `browser.new_context`."""
    contexts = []
    errors = []

    def open_page(**options):
        context = browser.new_context(base_url=live_server, **options)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(f"{error}\n{error.stack}"))
        page.on("console", lambda message: _policy_violation(message) and errors.append(message.text))
        return page

    yield open_page
    failed = any(getattr(request.node, f"report_{when}", None) and
                 getattr(request.node, f"report_{when}").failed for when in ("setup", "call"))
    if failed:
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
        for index, context in enumerate(contexts):
            for number, page in enumerate(context.pages):
                try:
                    page.screenshot(path=ARTIFACTS / f"{name}-{index}-{number}.png", full_page=True)
                except Exception:  # a screenshot is a courtesy; never hide the real failure
                    pass
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def _policy_violation(message) -> bool:
    """The browser's report of something the Content-Security-Policy blocked (an inline
    script, eval, a style), or htmx refusing to evaluate an expression."""
    text = message.text
    return "Content Security Policy" in text or "evalDisallowed" in text or "eval" in text and \
        message.type == "error" and "htmx" in text


@pytest.fixture
def page(new_page):
    return new_page()


@pytest.fixture
def sign_in(actions):
    """Create a user and sign in through the form, as a person would."""

    def sign_in(page, role="admin", **kwargs):
        user = actions.user(role, **kwargs)
        page.goto("/login")
        page.get_by_label("Email").fill(user.email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/login" not in url)
        return user

    return sign_in


@pytest.fixture
def kube():
    """The Kubernetes API emulator of tests/kube.py over HTTPS, for the checks a save runs.

    Always the emulator (not `kube_api_tls`, which skips when a real cluster is configured):
    the browser tests must run everywhere, and they only need a cluster that answers.
    """
    from tests.kube import KubeAPI

    with KubeAPI(tls=True) as api:
        yield api


@contextmanager
def no_reload(page):
    """Assert the block's HTMX work happened in the same document (no navigation or reload).

    Put the `expect(...)` that waits for the result inside the block: a reload would wipe
    the marker before the result could be seen.
    """
    page.evaluate("window.__marker = 1")
    yield
    assert page.evaluate("window.__marker") == 1, "the page was reloaded instead of swapped by htmx"


def provider_row(page, name):
    """The list row whose name link reads exactly NAME."""
    return page.locator("#provider-list tbody tr").filter(
        has=page.get_by_role("link", name=name, exact=True)
    )


def open_menu(page, name):
    """Open the row's actions menu and return it."""
    page.get_by_role("button", name=f"Actions for {name}").click()
    menu = page.get_by_role("menu", name=f"Actions for {name}")
    expect(menu).to_be_visible()
    return menu


def create_provider(page, name, kube, organization="Acme"):
    """Fill the open provider form for a provider on the emulator `kube`, and press Create Provider."""
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Cluster address").fill(kube.url)
    page.get_by_label("Namespace").fill("ws")
    page.get_by_label("CA certificate").fill(kube.ca_pem)
    page.get_by_label("Service account token").fill("test-token")
    page.get_by_label(organization).check()
    page.get_by_role("button", name="Create Provider", exact=True).click()


def create_opener(page):
    """"Create provider": a link (it works without JavaScript) though the spec says button."""
    return page.get_by_role("link", name="Create provider", exact=True).or_(
        page.get_by_role("button", name="Create provider", exact=True))


def cancel_control(scope):
    """Cancel in a form or dialog: a link back to the list (the no-JS way); a button would do."""
    return scope.get_by_role("link", name="Cancel", exact=True).or_(
        scope.get_by_role("button", name="Cancel", exact=True))
