"""An open providers page says when no health-check scheduler runs, and stops saying it when
one starts, without a reload: the badge poll carries the banner out of band. The scheduler is
a real `flask scheduler` process on the test database."""
import pytest

from tests.test_heartbeat import START_COMMAND, STALE_TEXT, start_scheduler, stop

from .conftest import expect, no_reload
from .test_accessibility import AXE, serious_violations

pytestmark = pytest.mark.browser

# Three one-second intervals, the poll's second, and a busy machine's leeway.
LIVE_MS = 15_000


@pytest.fixture
def app_config(app_config):
    return {**app_config, "CHECK_INTERVAL": 1, "POLL_SECONDS": 1}


@pytest.mark.parametrize("where", ["list", "provider-page"])
def test_an_open_page_shows_the_banner_and_loses_it_when_a_scheduler_starts(
        page, sign_in, make_provider, database_url, tmp_path, where):
    provider = make_provider("east")
    page.context.add_init_script(path=AXE)
    sign_in(page, "manager")
    page.goto("/manage/providers/" if where == "list" else f"/manage/providers/{provider.id}")
    banner = page.locator("#stale-banner")
    expect(page.get_by_role("heading", level=1)).to_be_visible()

    with no_reload(page):
        expect(banner).to_contain_text(f"{STALE_TEXT} yet.", timeout=LIVE_MS)
        expect(banner.locator("code")).to_have_text(START_COMMAND)
        expect(banner).to_have_role("status")  # announced to screen readers as it comes
        violations = serious_violations(page)
        assert not violations, "axe-core found:\n" + "\n".join(violations)
        process = start_scheduler(database_url, tmp_path, "scheduler")
        try:
            expect(banner).not_to_contain_text("Statuses are stale", timeout=LIVE_MS)
            expect(banner.locator(".flash")).to_have_count(0)
        finally:
            stop(process)
