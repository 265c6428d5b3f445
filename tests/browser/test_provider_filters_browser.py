"""The providers page's filters in a real browser: the form filters the list in place and the
URL follows; the badges keep following the providers' health while filtered (the checks run
as under `flask run`, against the Kubernetes API emulator, which the tests stop and start or
make fail for one provider's namespace); and without JavaScript the form is a plain GET form."""
import re
import threading

import pytest

from provider_admin.checks import check_now
from provider_admin.checks.scheduler import start_in_process
from provider_admin.extensions import db

from .conftest import expect, no_reload, provider_row

pytestmark = pytest.mark.browser

# Two failed checks a second apart, then a poll a second later: a slow machine gets leeway.
LIVE_MS = 20_000


@pytest.fixture
def app_config(app_config):
    return {**app_config, "CHECK_INTERVAL": 1, "POLL_SECONDS": 1, "CHECK_TIMEOUT": 2.0,
            "CHECK_FAILURE_THRESHOLD": 2, "CHECK_BACKOFF_MAX": 1}


@pytest.fixture
def west_broken(kube):
    """While set, the cluster fails west's requests (its namespace, ws2) and no one else's."""
    broken = threading.Event()
    kube.respond(lambda request: broken.is_set() and request.namespace == "ws2", 500, "etcd leader lost")
    return broken


@pytest.fixture
def providers(kube, kube_provider, make_org, make_provider):
    """east (namespace ws, Acme) and west (namespace ws2), both deployed and Ready; north
    (Acme) never checked."""
    acme = make_org("Acme")
    east = kube_provider(kube, "east", namespace="ws", organizations=[acme])
    west = kube_provider(kube, "west", namespace="ws2")
    for provider in (east, west):
        kube.deploy_marker(provider.name, namespace=provider.namespace)
        assert check_now(provider).ok and provider.status == "ready"
    make_provider("north", organizations=[acme])  # Pending: no cluster answers for it
    ids = {"east": east.id, "west": west.id, "acme": acme.id}
    db.session.remove()  # the test's own session holds nothing while other threads write
    return ids


@pytest.fixture
def scheduler(app, providers):
    """The health-check scheduler running in the app's process, as under `flask run`."""
    background = start_in_process(app)
    yield app.extensions["check_sweeper"]
    background.shutdown(wait=True)
    app.extensions.pop("check_sweeper").shutdown(wait=True)


def _rows(page):
    return page.locator("#provider-list tbody tr")


def test_filtering_by_status_follows_a_provider_out_of_and_back_into_the_list(
        page, sign_in, west_broken, providers, scheduler):
    sign_in(page)
    page.goto("/manage/providers/")
    expect(_rows(page)).to_have_count(3)

    with no_reload(page):
        page.get_by_label("Status").select_option(label="Ready")
        expect(page).to_have_url(re.compile(r"/manage/providers/\?status=ready&"))
        expect(_rows(page)).to_have_count(2)
        expect(provider_row(page, "north")).to_have_count(0)
        expect(page.locator("#provider-count")).to_have_text("2 providers match these filters.")

        # west fails its checks: it no longer matches "Ready", and leaves the list by itself.
        west_broken.set()
        expect(provider_row(page, "west")).to_have_count(0, timeout=LIVE_MS)
        expect(provider_row(page, "east").get_by_text("Ready", exact=True)).to_be_visible()
        expect(page.locator("#provider-count")).to_have_text("1 provider matches these filters.")
        expect(page.get_by_label("Status")).to_have_value("ready")

        # Ready again: it matches again, and comes back.
        west_broken.clear()
        expect(provider_row(page, "west").get_by_text("Ready", exact=True)).to_be_visible(timeout=LIVE_MS)
        expect(_rows(page)).to_have_count(2)

    # The URL names the filter: opened again (a bookmark, a shared link), it shows the same.
    page.reload()
    expect(page.get_by_label("Status")).to_have_value("ready")
    expect(_rows(page)).to_have_count(2)


def test_badges_refresh_in_place_while_filtered(page, sign_in, kube, providers, scheduler):
    sign_in(page)
    page.goto("/manage/providers/")

    with no_reload(page):
        page.get_by_label("Organization").select_option(label="Acme")
        page.get_by_label("Name contains").fill("ea")
        page.get_by_role("button", name="Filter").click()
        expect(page).to_have_url(re.compile(rf"organization={providers['acme']}.*q=ea|q=ea.*organization="))
        expect(_rows(page)).to_have_count(1)
        east = provider_row(page, "east")
        expect(east.get_by_text("Ready", exact=True)).to_be_visible()

        kube.stop()  # still in Acme and still named "east": it stays, its badge turns Error
        expect(east.get_by_text("Error", exact=True)).to_be_visible(timeout=LIVE_MS)
        expect(east).to_contain_text(f"Connection to 127.0.0.1:{kube.port} was refused")
        expect(_rows(page)).to_have_count(1)

        kube.start()
        expect(east.get_by_text("Ready", exact=True)).to_be_visible(timeout=LIVE_MS)


def test_filters_without_javascript(new_page, sign_in, providers):
    page = new_page(java_script_enabled=False)
    sign_in(page)
    page.goto("/manage/providers/")
    page.get_by_label("Cordoned").select_option(label="Not cordoned")
    page.get_by_label("Organization").select_option(label="Acme")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(rf"\?status=&organization={providers['acme']}&cordoned=no&q=$"))
    expect(_rows(page)).to_have_count(2)
    expect(provider_row(page, "west")).to_have_count(0)

    # A URL edited by hand: said at the field, and the list is not filtered by it.
    page.goto("/manage/providers/?status=sleeping&organization=" + str(providers["acme"]))
    expect(page.locator("#provider-filter-status-error")).to_have_text(
        "Unknown status “sleeping”. Showing every status.")
    expect(_rows(page)).to_have_count(2)

    page.get_by_role("link", name="Clear filters").first.click()
    expect(page).to_have_url(re.compile(r"/manage/providers/$"))
    expect(_rows(page)).to_have_count(3)
    expect(page.locator("#provider-filter-status-error")).to_have_text("")
