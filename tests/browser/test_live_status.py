"""A page left open follows a provider's health as the scheduled checks see it, without a reload.

The checks run as in `flask run`: the in-process scheduler of the test app, against the
Kubernetes API emulator over HTTPS, which the tests stop and start again (connection
refused) or make answer with errors. Intervals are a second, so an outage shows within a few.
"""
import threading

import pytest

from provider_admin.checks import check_now
from provider_admin.checks.scheduler import start_in_process
from provider_admin.extensions import db

from .conftest import expect, no_reload, provider_row

pytestmark = pytest.mark.browser

# Two failed checks a second apart, then a poll a second later: a slow machine gets leeway.
LIVE_MS = 20_000
# A reason quoted from the cluster that a page must show as text, never as markup.
MARKUP = 'etcd <b>leader</b> lost & <img src="x" onerror="window.__injected = 1">'


@pytest.fixture
def app_config(app_config):
    return {**app_config, "CHECK_INTERVAL": 1, "POLL_SECONDS": 1, "CHECK_TIMEOUT": 2.0,
            "CHECK_FAILURE_THRESHOLD": 2, "CHECK_BACKOFF_MAX": 1}


@pytest.fixture
def ready_provider(kube, kube_provider):
    """Provider "east" on the emulator, deployed and checked: Ready."""
    provider = kube_provider(kube, "east", namespace="ws")
    kube.deploy_marker("east", namespace="ws")
    assert check_now(provider).ok
    assert provider.status == "ready"
    db.session.remove()  # the test's own session holds nothing while other threads write
    return provider


@pytest.fixture
def scheduler(app, ready_provider):
    """The health-check scheduler running in the app's process, as under `flask run`."""
    background = start_in_process(app)
    yield app.extensions["check_sweeper"]
    background.shutdown(wait=True)
    app.extensions.pop("check_sweeper").shutdown(wait=True)


def _list_status(page, provider_id):
    page.goto("/manage/providers/")
    return page.locator(f"#provider-row-{provider_id}")


def _page_status(page, provider_id):
    page.goto(f"/manage/providers/{provider_id}")
    expect(page.get_by_role("heading", name="east", level=1)).to_be_visible()
    return page.locator(f"#provider-status-{provider_id}")


@pytest.mark.parametrize("open_status", [_list_status, _page_status], ids=["list", "provider-page"])
def test_open_page_follows_an_outage_and_the_recovery(page, sign_in, kube, ready_provider, scheduler,
                                                      open_status):
    sign_in(page)
    status = open_status(page, ready_provider.id)
    expect(status.get_by_text("Ready", exact=True)).to_be_visible()
    refused = f"Connection to 127.0.0.1:{kube.port} was refused"

    with no_reload(page):
        kube.stop()
        expect(status.get_by_text("Error", exact=True)).to_be_visible(timeout=LIVE_MS)
        expect(status).to_contain_text(refused)
        expect(status).to_contain_text("Check that the API server is running")

        kube.start()
        expect(status.get_by_text("Ready", exact=True)).to_be_visible(timeout=LIVE_MS)
        expect(status).not_to_contain_text(refused)
        expect(status.get_by_text("Error", exact=True)).to_have_count(0)


def test_reason_quoted_from_the_cluster_is_shown_as_text(page, sign_in, kube, ready_provider, scheduler):
    unhealthy = threading.Event()
    kube.respond(lambda: "get /version" if unhealthy.is_set() else False, 500, MARKUP)
    sign_in(page)
    row = provider_row(page, "east")
    expect(row.get_by_text("Ready", exact=True)).to_be_visible()

    with no_reload(page):
        unhealthy.set()
        expect(row.get_by_text("Error", exact=True)).to_be_visible(timeout=LIVE_MS)
        expect(row).to_contain_text(f"The API server failed on GET /version (500): {MARKUP}")
        expect(row.locator("b, img")).to_have_count(0)
        assert page.evaluate("window.__injected") is None

        unhealthy.clear()
        expect(row.get_by_text("Ready", exact=True)).to_be_visible(timeout=LIVE_MS)
        expect(row).not_to_contain_text("etcd")
