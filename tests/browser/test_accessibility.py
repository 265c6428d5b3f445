"""Every page, dialog and open menu, as each role sees it, checked by axe-core in the browser.

axe-core (tests/browser/vendor, see its README) runs in the page as an init script: the
browser evaluates those outside the page's Content-Security-Policy, so the policy stays on
and any violation the app's own markup causes still fails the test. A rule broken with
impact "serious" or "critical" fails the test, with its id, its help text and the elements.
"""
from dataclasses import dataclass
from pathlib import Path

import pytest

from provider_admin.extensions import db
from provider_admin.models import ProviderCheck, Workspace

from .conftest import expect, open_menu, provider_row

pytestmark = pytest.mark.browser

AXE = Path(__file__).parent / "vendor" / "axe-4.14.1.min.js"
FAILING_IMPACTS = {"serious", "critical"}

RUN_AXE = """async () => {
    const result = await axe.run(document, {resultTypes: ["violations"]});
    return result.violations.map(rule => ({
        id: rule.id, impact: rule.impact, help: rule.help,
        targets: rule.nodes.map(node => node.target.join(" ")),
    }));
}"""


@dataclass
class World:
    """What the pages show: providers with and without workspaces, workspaces in two states."""
    east: object
    west: object
    running: Workspace
    failed: Workspace
    org: object


@pytest.fixture
def make_world(actions, make_org, make_provider):
    """The world, its workspaces owned by OWNER (someone else when nobody is signed in)."""
    def make(owner=None):
        return _world(owner or actions.user("member", username="alice"), make_org, make_provider)
    return make


def _world(owner, make_org, make_provider):
    org = make_org("Acme", members=[owner])
    east = make_provider("east", organizations=[org])
    west = make_provider("west", organizations=[org], cordoned=True, cordon_reason="Node pool upgrade")
    running, failed = (Workspace(name=name, owner=owner, organization=org, provider=east, image="img",
                                 cpu="1", memory="1Gi", disk="10Gi", status=status,
                                 status_message="The cluster refused the pod." if status == "failed" else None)
                       for name, status in (("dev", "running"), ("old", "failed")))
    db.session.add_all([running, failed])
    db.session.add_all(ProviderCheck(provider=east, ok=ok, category=category, message=message, duration_ms=ms)
                       for ok, category, message, ms in ((True, "ready", "", 120), (False, "unreachable",
                       "Connection refused", 5000), (True, "ready", "", 90)))  # its pictures
    db.session.commit()
    return World(east, west, running, failed, org)


def visit(url):
    def show(page, world):
        page.goto(url.format(w=world))
        page.wait_for_load_state("networkidle")  # and what htmx loads after the page
    return show


def from_row(provider, item, heading):
    """Open a dialog from a provider row's menu, as a mouse user would."""
    def show(page, world):
        page.goto("/manage/providers/")
        open_menu(page, provider).get_by_role("menuitem", name=item, exact=True).click()
        expect(page.get_by_role("dialog", name=heading)).to_be_visible()
    return show


def from_workspace(link, heading):
    def show(page, world):
        page.goto(f"/workspaces/{world.failed.id}")
        page.get_by_role("link", name=link, exact=True).click()
        expect(page.get_by_role("dialog", name=heading)).to_be_visible()
    return show


def open_row_menu(page, world):
    page.goto("/manage/providers/")
    expect(provider_row(page, "east")).to_be_visible()
    open_menu(page, "east")


def refused_cordon(page, world):
    from_row("east", "Cordon", "Cordon provider east?")(page, world)
    page.get_by_role("dialog").get_by_role("button", name="Cordon", exact=True).click()
    expect(page.get_by_role("dialog").get_by_label("Reason")).to_have_attribute("aria-invalid", "true")


def refused_provider_form(page, world):
    page.goto("/manage/providers/new")
    page.get_by_role("button", name="Create provider").click()
    expect(page.locator("[aria-invalid=true]").first).to_be_visible()


def notifications_with_a_log(page, world):
    """A target added through the form, then a test message that fails (no mail server)."""
    page.goto("/manage/notifications/")
    page.get_by_label("Name").fill("Ops mail")
    page.get_by_label("E-mail", exact=True).check()
    page.get_by_label("E-mail recipients").fill("ops@example.com")
    page.get_by_role("button", name="Add target").click()
    page.get_by_role("button", name="Send test to Ops mail").click()
    expect(page.get_by_role("alert")).to_contain_text("No mail server is configured")


def refused_notification_target(page, world):
    page.goto("/manage/notifications/")
    page.get_by_role("button", name="Add target").click()
    expect(page.locator("[aria-invalid=true]").first).to_be_visible()


MANAGER_PAGES = {
    "providers": visit("/manage/providers/"),
    "providers-filtered": visit("/manage/providers/?status=ready&organization={w.org.id}&cordoned=no&q=ea"),
    "providers-filter-refused": visit("/manage/providers/?status=sleeping&organization=0&cordoned=maybe"),
    "providers-none-match": visit("/manage/providers/?status=pending"),
    "provider": visit("/manage/providers/{w.east.id}"),
    "provider-cordoned": visit("/manage/providers/{w.west.id}"),
    "provider-new": visit("/manage/providers/new"),
    "provider-new-refused": refused_provider_form,
    "provider-edit": visit("/manage/providers/{w.east.id}/edit"),
    "provider-hints": visit("/manage/providers/{w.east.id}/hints"),
    "provider-menu-page": visit("/manage/providers/{w.east.id}/menu"),
    "provider-delete-page": visit("/manage/providers/{w.west.id}/delete"),
    "provider-cordon-page": visit("/manage/providers/{w.east.id}/cordon"),
    "row-menu": open_row_menu,
    "provider-delete-dialog": from_row("west", "Delete", "Delete provider west?"),
    "provider-delete-refused-dialog": from_row("east", "Delete", "Delete provider east?"),
    "cordon-dialog": from_row("east", "Cordon", "Cordon provider east?"),
    "cordon-refused-dialog": refused_cordon,
    "organizations": visit("/manage/organizations/"),
    "organization": visit("/manage/organizations/{w.org.id}"),
    "audit": visit("/manage/audit/"),
    "workspaces": visit("/workspaces/"),
    "workspaces-of-provider": visit("/workspaces/?provider={w.east.id}"),
    "workspace-new": visit("/workspaces/new"),
    "workspace": visit("/workspaces/{w.running.id}"),
    "workspace-failed": visit("/workspaces/{w.failed.id}"),
    "pod": visit("/workspaces/{w.running.id}/pod"),
    "workspace-delete-page": visit("/workspaces/{w.running.id}/delete"),
    "workspace-delete-dialog": from_workspace("Delete", "Delete workspace old?"),
    "not-found": visit("/manage/providers/999999"),
    "embed-status-large": visit("/embed/providers?size=large"),
    "api-tokens": visit("/tokens/"),
    "embed-status": visit("/embed/providers"),
}
ADMIN_PAGES = {
    **MANAGER_PAGES,
    "users": visit("/manage/users/"),
    "user-new": visit("/manage/users/new"),
    "user-edit": visit("/manage/users/{w.running.owner_id}/edit"),
    "users-new-refused": lambda page, world: (page.goto("/manage/users/new"),
                                              page.get_by_role("button", name="Create user").click(),
                                              page.wait_for_load_state()),
    "workspace-forget-page": visit("/workspaces/{w.failed.id}/forget"),
    "workspace-forget-dialog": from_workspace("Remove record", "Remove the record of old?"),
    "api-tokens-everyone": visit("/tokens/all"),
    "notifications": notifications_with_a_log,
    "notifications-refused": refused_notification_target,
}
MEMBER_PAGES = {
    "workspaces": visit("/workspaces/"),
    "workspace-new": visit("/workspaces/new"),
    "workspace": visit("/workspaces/{w.running.id}"),
    "workspace-delete-page": visit("/workspaces/{w.running.id}/delete"),
    "workspace-delete-dialog": from_workspace("Delete", "Delete workspace old?"),
    "forbidden": visit("/manage/providers/"),
    "not-found": visit("/workspaces/999999"),
    "api-tokens": visit("/tokens/"),
    "embed-status": visit("/embed/providers"),
}
SIGNED_OUT_PAGES = {
    "login": visit("/login"),
    "api-reference": visit("/api/v1/docs"),
    "embed-sign-in": visit("/embed/providers"),
    "login-refused": lambda page, world: (page.goto("/login"),
                                          page.get_by_role("button", name="Sign in").click(),
                                          page.wait_for_load_state()),
}
CASES = [pytest.param(role, show, id=f"{role}-{name}")
         for role, pages in (("admin", ADMIN_PAGES), ("manager", MANAGER_PAGES), ("member", MEMBER_PAGES),
                             ("signed-out", SIGNED_OUT_PAGES))
         for name, show in pages.items()]


def serious_violations(page) -> list[str]:
    return [f"{rule['id']} ({rule['impact']}): {rule['help']}\n    " + "\n    ".join(rule["targets"])
            for rule in page.evaluate(RUN_AXE) if rule["impact"] in FAILING_IMPACTS]


@pytest.mark.parametrize("role, show", CASES)
def test_no_serious_accessibility_violations(role, show, page, sign_in, make_world):
    page.context.add_init_script(path=AXE)
    user = None if role == "signed-out" else sign_in(page, role)
    show(page, make_world(user))
    violations = serious_violations(page)
    assert not violations, "axe-core found:\n" + "\n".join(violations)


class TestBranded:
    """A light and a dark accent: the top bar's and buttons' text is computed to stay readable."""

    @pytest.fixture(params=["#ffcc00", "#0b3d91"])
    def app_config(self, app_config, request):
        return {**app_config, "ACCENT_COLOR": request.param, "SITE_NAME": "Platform Ops"}

    @pytest.mark.parametrize("role, show", [
        ("manager", MANAGER_PAGES["providers"]), ("signed-out", SIGNED_OUT_PAGES["login"]),
        ("member", MEMBER_PAGES["workspaces"]),
    ])
    def test_no_serious_accessibility_violations(self, role, show, page, sign_in, make_world):
        test_no_serious_accessibility_violations(role, show, page, sign_in, make_world)
        expect(page.locator(".topbar .brand")).to_have_text("Platform Ops")


def test_the_setup_page_before_the_first_user(page):
    page.context.add_init_script(path=AXE)
    page.goto("/setup")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    violations = serious_violations(page)
    assert not violations, "axe-core found:\n" + "\n".join(violations)
