"""Check now on a provider's own page: the page stays, and shows the result."""
import pytest

from .conftest import expect, no_reload

pytestmark = pytest.mark.browser


def test_check_now_on_the_provider_page_shows_the_result_there(page, sign_in, kube_provider, kube):
    provider = kube_provider(kube, "east", namespace="ws")
    sign_in(page)
    page.goto(f"/manage/providers/{provider.id}")
    status = page.locator(f"#provider-status-{provider.id}")
    expect(status.get_by_text("Pending", exact=True)).to_be_visible()
    kube.deploy_marker("east", namespace="ws")

    with no_reload(page):
        page.get_by_role("button", name="Check now").click()
        expect(status.get_by_text("Ready", exact=True)).to_be_visible()
        expect(page.locator(".history tbody tr").first).to_contain_text("OK")
    assert page.url.endswith(f"/manage/providers/{provider.id}")
    expect(page.get_by_role("heading", name="east", level=1)).to_be_visible()
