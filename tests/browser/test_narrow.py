"""Narrow screens: phones and the intranet portal's frames (issue 12).

From 360 px wide no page scrolls sideways and every action stays reachable: the navigation
folds behind "Menu", the providers table turns into stacked rows, the other wide tables and
code blocks scroll in their own focusable box, dialogs fit the window. Every page is visited
(the list is checked against the app's GET routes), with data long enough to push at the
edges: long unbroken names, cluster error messages and addresses, many organizations.
"""
import re
from dataclasses import dataclass
from datetime import timedelta

import pytest

from provider_admin import audit
from provider_admin.extensions import db
from provider_admin.models import AuditEvent, BuildLogLine, NotificationDelivery, NotificationEvent, NotificationTarget, ProviderCheck, Workspace
from provider_admin.models.base import utcnow
from provider_admin.tokens import service as tokens

from .conftest import expect, open_menu, provider_row
from .test_accessibility import AXE, serious_violations

pytestmark = pytest.mark.browser

NARROW = [360, 390]
FRAME = 800  # a portal's side frame or a tablet: the navigation folded, the providers stacked
HEIGHT = 740
WIDE = 1280

UNBROKEN = "workspaceprovidernamewithoutanyplacetobreakitanywhereatall0123"  # 63 characters
HYPHENATED = "eu-central-1-production-cluster-for-developer-workspaces-nr-0042"
LONG_ADDRESS = "https://" + "kubernetes-api-gateway-" * 8 + "example.com:6443/clusters/" + "x" * 80
LONG_ERROR = ("The cluster answered 403 Forbidden: " + "serviceaccount:workspaces:provider-admin-" * 6
              + " cannot list resource pods at " + LONG_ADDRESS + "/api/v1/namespaces/workspaces/pods?limit=500")
LONG_ADMIN = {"username": "a" * 40, "email": "administrator." + "a" * 60 + "@example.com"}
LONG_MEMBER = {"username": "m" * 40, "email": "developer." + "d" * 60 + "@example.com"}
ORGANIZATIONS = [f"Platform engineering department number {n} of the company" for n in range(1, 25)] + [
    "Organizationwhosenamehasnospaceanywhereinitatallsoitcannotwrap"]


@dataclass(frozen=True)
class Page:
    """A page at URL (formatted with the world), as ROLE sees it; ENDPOINT is its route."""
    name: str
    endpoint: str
    url: str
    role: str


@dataclass
class World:
    long: object
    unbroken: object
    running: Workspace
    failed: Workspace
    org: object
    member: object


# Every GET route that answers with a page, as each role meets it (the error pages too).
PAGES = [
    Page("sign-in", "auth.login", "/login", "signed-out"),
    Page("break-glass", "auth.break_glass", "/login/break-glass/" + "z" * 43, "signed-out"),
    Page("sso-unreachable", "oidc.login", "/oidc/login", "signed-out"),
    Page("sso-refused", "oidc.callback", "/oidc/callback?error=invalid_request&error_description=" + "y" * 200,
         "signed-out"),
    Page("api-reference", "api.reference", "/api/v1/docs", "signed-out"),
    Page("setup", "auth.setup", "/setup", "nobody"),
    Page("providers", "providers.index", "/manage/providers/", "admin"),
    Page("provider", "providers.show", "/manage/providers/{w.long.id}", "admin"),
    Page("provider-unbroken", "providers.show", "/manage/providers/{w.unbroken.id}", "admin"),
    Page("provider-new", "providers.create", "/manage/providers/new", "admin"),
    Page("provider-edit", "providers.update", "/manage/providers/{w.long.id}/edit", "admin"),
    Page("provider-hints", "providers.hints", "/manage/providers/{w.long.id}/hints", "admin"),
    Page("provider-menu", "providers.menu", "/manage/providers/{w.unbroken.id}/menu", "admin"),
    Page("provider-cordon", "providers.cordon", "/manage/providers/{w.unbroken.id}/cordon", "admin"),
    Page("provider-delete", "providers.delete", "/manage/providers/{w.unbroken.id}/delete", "admin"),
    Page("organizations", "organizations.index", "/manage/organizations/", "admin"),
    Page("organization", "organizations.update", "/manage/organizations/{w.org.id}", "admin"),
    Page("users", "users.index", "/manage/users/", "admin"),
    Page("user-new", "users.create", "/manage/users/new", "admin"),
    Page("user-edit", "users.update", "/manage/users/{w.member.id}/edit", "admin"),
    Page("user-claims", "users.claims", "/manage/users/{w.member.id}/claims", "admin"),
    Page("audit", "audit.index", "/manage/audit/", "admin"),
    Page("tokens", "tokens.index", "/tokens/", "admin"),
    Page("tokens-everyone", "tokens.everyone", "/tokens/all", "admin"),
    Page("workspaces", "workspaces.index", "/workspaces/", "admin"),
    Page("workspace", "workspaces.show", "/workspaces/{w.running.id}", "admin"),
    Page("workspace-failed", "workspaces.show", "/workspaces/{w.failed.id}", "admin"),
    Page("workspace-new", "workspaces.create", "/workspaces/new", "admin"),
    Page("pod", "workspaces.pod", "/workspaces/{w.running.id}/pod", "admin"),
    Page("workspace-delete", "workspaces.delete", "/workspaces/{w.running.id}/delete", "admin"),
    Page("workspace-forget", "workspaces.forget", "/workspaces/{w.failed.id}/forget", "admin"),
    Page("not-found", "providers.show", "/manage/providers/999999", "admin"),
    Page("member-workspaces", "workspaces.index", "/workspaces/", "member"),
    Page("member-workspace", "workspaces.show", "/workspaces/{w.failed.id}", "member"),
    Page("member-tokens", "tokens.index", "/tokens/", "member"),
    Page("forbidden", "providers.index", "/manage/providers/", "member"),
    Page("notifications", "notifications.index", "/manage/notifications/", "admin"),
    Page("status-view", "embed.index", "/embed/providers", "admin"),
    Page("status-view-large", "embed.index", "/embed/providers?size=large", "admin"),
    Page("member-status-view", "embed.index", "/embed/providers", "member"),
    Page("status-view-signed-out", "embed.index", "/embed/providers", "signed-out"),
]
# GET routes that answer with no page of their own, and why.
NOT_PAGES = {
    "static": "files",
    "auth.home": "a redirect to the role's start page",
    "providers.status": "the badge poll's answer (no body, or a header)",
    "providers.cluster_names": "a fragment of the provider form, visited there",
    "providers.manifest": "a YAML download",
    "metrics.metrics": "Prometheus' text, for scrapers",
    "health.healthz": "a probe's plain answer",
    "health.readyz": "a probe's JSON answer",
}
ROLES = ["admin", "member", "signed-out", "nobody"]

# What a person can act on: each must lie inside the window, or inside a box that scrolls.
LAYOUT_PROBLEMS = """() => {
    const width = window.innerWidth, problems = [];
    const root = document.documentElement;
    const sticksOut = el => el.getBoundingClientRect().right > width + 0.5;
    if (root.scrollWidth > width) {
        const culprits = [...document.querySelectorAll("body *")].filter(
            el => sticksOut(el) && ![...el.children].some(sticksOut)).slice(0, 5);
        problems.push(`the page is ${root.scrollWidth} px wide, from ${culprits.map(
            el => el.tagName.toLowerCase() + (el.className ? "." + el.className : "")).join(", ")}`);
    }
    for (const el of [root, document.body]) {
        const overflow = getComputedStyle(el).overflowX;
        if (overflow !== "visible") problems.push(`${el.tagName} hides what sticks out (overflow-x: ${overflow})`);
    }
    const scrolls = el => ["auto", "scroll"].includes(getComputedStyle(el).overflowX);
    const name = el => `${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""} "${
        (el.getAttribute("aria-label") || el.textContent || el.value || "").trim().slice(0, 40)}"`;
    for (const el of document.querySelectorAll(
            "a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]")) {
        const box = el.getBoundingClientRect();
        if (!box.width || !box.height || getComputedStyle(el).visibility === "hidden") continue;
        let inBox = false;
        for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
            if (scrolls(up)) { inBox = true; break; }
        }
        if (!inBox && (box.left < -0.5 || box.right > width + 0.5)) {
            problems.push(`${name(el)} lies at ${Math.round(box.left)}..${Math.round(box.right)} px`);
        }
    }
    for (const el of document.querySelectorAll("body *")) {
        if (!scrolls(el) || el.scrollWidth <= el.clientWidth) continue;
        if (el.tabIndex < 0) problems.push(`${name(el)} scrolls sideways but a keyboard cannot reach it`);
        if (!el.getAttribute("aria-label") && !el.getAttribute("aria-labelledby")) {
            problems.push(`${name(el)} scrolls sideways but has no name`);
        }
    }
    return problems;
}"""


@pytest.fixture
def app_config(app_config):
    # Single sign-on on, with an identity provider that does not answer: its pages show too.
    return app_config | {"OIDC_ISSUER": "http://127.0.0.1:9", "OIDC_CLIENT_ID": "provider-admin",
                         "OIDC_CLIENT_SECRET": "secret", "OIDC_TIMEOUT": 1.0,
                         "OIDC_ROLE_MAP": {"platform-team": "manager"}}


@pytest.fixture
def make_world(actions, make_org, make_provider):
    def make(member=None):
        member = member or actions.user("member", **LONG_MEMBER)
        orgs = [make_org(name, members=[member]) for name in ORGANIZATIONS]
        long = make_provider(HYPHENATED, organizations=orgs, cluster_address=LONG_ADDRESS, status="error",
                             status_message=LONG_ERROR, kube_version="v1.31.4-eks-" + "f" * 40,
                             last_checked_at=utcnow(), cordoned=True, cordon_reason="Upgrade " + "w" * 120,
                             pod_node_selector={"node.kubernetes.io/" + "s" * 60: "v" * 60})
        unbroken = make_provider(UNBROKEN, organizations=orgs[-1:], status="ready", last_checked_at=utcnow())
        make_provider("east", organizations=orgs[:1])
        db.session.add_all(ProviderCheck(provider=long, ok=False, category="forbidden", message=LONG_ERROR,
                                         trigger="scheduled", duration_ms=12.5) for _ in range(3))
        running, failed = (Workspace(name=name, owner=member, organization=orgs[-1], provider=long,
                                     image="registry.example.com/" + "i" * 120 + ":latest", cpu="2", memory="4Gi",
                                     disk="20Gi", status=status, status_message=message)
                           for name, status, message in (("r" * 63, "running", None), ("f" * 63, "failed", LONG_ERROR)))
        db.session.add_all([running, failed])
        db.session.flush()
        db.session.add_all(BuildLogLine(workspace=ws, line=LONG_ERROR) for ws in (running, failed))
        member.idp_claims = {"sub": "s" * 80, "groups": ["g" * 90, "platform-team"], "email": member.email}
        member.idp_outcome = {"groups": ["g" * 90, "platform-team"], "role": "manager",
                              "role_from": ["platform-team"], "organizations": {}, "notes": []}
        member.idp_synced_at = utcnow()
        for index in range(3):
            audit.record("provider.update", long, {"status_message": {"from": LONG_ERROR, "to": LONG_ERROR},
                                                   "cluster_address": LONG_ADDRESS}, actor="scheduler")
        target = NotificationTarget(name="n" * 100, kind="webhook", url_origin="https://" + "h" * 60 + ".example.com")
        event = NotificationEvent(kind="provider.status", subject=UNBROKEN, text=LONG_ERROR, data={})
        db.session.add(NotificationDelivery(event=event, target=target, status="failed", attempts=6, max_attempts=6,
                                            last_error=LONG_ERROR, response_code=500, last_attempt_at=utcnow()))
        db.session.add(AuditEvent(actor="u" * 200 + "@example.com", action="provider.create", target_type="provider",
                                  target_name=UNBROKEN * 3, at=utcnow() - timedelta(minutes=1)))
        db.session.commit()
        return World(long, unbroken, running, failed, orgs[-1], member)
    return make


def _token_for(user):
    tokens.create(user, "CI: check every provider from the nightly pipeline " + "t" * 45, 30, True)


def _open(new_page, width, height=HEIGHT, **options):
    return new_page(viewport={"width": width, "height": height}, **options)


@pytest.fixture
def admin_in_world(new_page, sign_in, make_world):
    """A window WIDTH wide with an admin signed in, and the world: (page, world)."""
    def open_window(width, height=HEIGHT, **options):
        page = _open(new_page, width, height, **options)
        world = make_world()
        sign_in(page, "admin")
        return page, world
    return open_window


def _world_signed_in(page, role, sign_in, make_world):
    """The world, seen by ROLE (a member sees it as the owner of its workspaces)."""
    if role == "nobody":
        return None
    if role == "signed-out":
        return make_world()
    user = sign_in(page, role, **(LONG_MEMBER if role == "member" else LONG_ADMIN))
    _token_for(user)
    return make_world(user if role == "member" else None)


def test_every_page_is_visited(app):
    """A new page must be added here (or to NOT_PAGES, saying why): the check covers every page."""
    gets = {rule.endpoint for rule in app.url_map.iter_rules() if "GET" in rule.methods}
    pages = gets - set(NOT_PAGES) - {e for e in gets if e.startswith("api.") and e != "api.reference"}
    assert pages == {page.endpoint for page in PAGES}


@pytest.mark.parametrize("width", NARROW + [FRAME, WIDE])
@pytest.mark.parametrize("role", ROLES)
def test_no_page_scrolls_sideways(new_page, sign_in, make_world, role, width):
    page = _open(new_page, width)
    world = _world_signed_in(page, role, sign_in, make_world)
    problems = []
    for visit in (visit for visit in PAGES if visit.role == role):
        page.goto(visit.url.format(w=world))
        page.wait_for_load_state("networkidle")  # and what htmx loads after the page
        expect(page.get_by_role("heading").first).to_be_visible()
        problems += [f"{visit.name} ({visit.url.format(w=world)}): {problem}"
                     for problem in page.evaluate(LAYOUT_PROBLEMS)]
    assert not problems, f"at {width} px:\n" + "\n".join(problems)


def _inside_window(page, locator):
    """Whether the element lies wholly in the window and is what a click there would hit."""
    return locator.evaluate("""el => {
        const box = el.getBoundingClientRect();
        const hit = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
        return box.left >= 0 && box.top >= 0 && box.right <= window.innerWidth &&
               box.bottom <= window.innerHeight && (hit === el || el.contains(hit));
    }""")


@pytest.mark.parametrize("width", NARROW)
def test_menu_opens_the_navigation(new_page, sign_in, width):
    page = _open(new_page, width)
    sign_in(page, "admin")
    page.goto("/workspaces/")
    menu = page.get_by_role("button", name="Menu")
    providers = page.get_by_role("navigation", name="Main").get_by_role("link", name="Workspace providers")
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(providers).to_be_hidden()
    expect(page.get_by_role("button", name="Sign out")).to_be_hidden()

    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    for link in [providers, page.get_by_role("link", name="API tokens"), page.get_by_role("button", name="Sign out")]:
        expect(link).to_be_visible()
        assert _inside_window(page, link)
    assert not page.evaluate(LAYOUT_PROBLEMS)
    providers.click()
    expect(page).to_have_url(re.compile(r"/manage/providers/$"))
    expect(page.get_by_role("heading", name="Workspace providers")).to_be_visible()
    expect(page.get_by_role("button", name="Menu")).to_have_attribute("aria-expanded", "false")


def test_menu_from_the_keyboard(new_page, sign_in):
    page = _open(new_page, 360)
    sign_in(page, "admin")
    page.goto("/workspaces/")
    menu = page.get_by_role("button", name="Menu")
    page.keyboard.press("Tab")  # the site's name
    page.keyboard.press("Tab")
    expect(menu).to_be_focused()
    assert menu.evaluate("el => getComputedStyle(el).outlineStyle") != "none", "the focus does not show"
    page.keyboard.press("Enter")
    expect(menu).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Workspaces", exact=True)).to_be_focused()
    page.keyboard.press("Escape")
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(menu).to_be_focused()
    expect(page.get_by_role("link", name="Workspaces", exact=True)).to_be_hidden()
    page.keyboard.press("Space")
    expect(menu).to_have_attribute("aria-expanded", "true")


@pytest.mark.parametrize("url", ["/manage/providers/", "/manage/providers/{w.long.id}", "/manage/audit/"])
def test_narrow_pages_with_the_menu_open_pass_axe(admin_in_world, url):
    """The stacked rows, the scroll boxes and the open navigation, checked by axe-core."""
    page, world = admin_in_world(360)
    page.context.add_init_script(path=AXE)
    page.goto(url.format(w=world))
    page.wait_for_load_state("networkidle")
    page.get_by_role("button", name="Menu").click()
    expect(page.get_by_role("link", name="Audit log")).to_be_visible()
    violations = serious_violations(page)
    assert not violations, "axe-core found:\n" + "\n".join(violations)


def test_without_javascript_the_links_show_stacked(admin_in_world):
    page, _ = admin_in_world(360, java_script_enabled=False)
    page.goto("/manage/providers/")
    expect(page.get_by_role("button", name="Menu")).to_have_count(0)  # hidden: it needs the script
    for link in ["Workspaces", "Workspace providers", "Organizations", "Users", "Audit log", "API tokens"]:
        expect(page.get_by_role("link", name=link, exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    assert not page.evaluate(LAYOUT_PROBLEMS)
    page.goto("/manage/organizations/")
    expect(page.get_by_role("region", name="Organizations")).to_have_attribute("tabindex", "0")


@pytest.mark.parametrize("width", NARROW)
def test_every_row_menu_and_the_delete_dialog_fit(admin_in_world, width):
    page, world = admin_in_world(width)
    page.goto("/manage/providers/")
    names = [world.long.name, world.unbroken.name, "east"]
    for name in names:
        expect(provider_row(page, name)).to_be_visible()
        menu = open_menu(page, name)
        for item in menu.get_by_role("menuitem").all():
            item.scroll_into_view_if_needed()
            assert _inside_window(page, item), f"{item.text_content()} of {name} lies outside the window"
        page.keyboard.press("Escape")
        expect(menu).to_have_count(0)
    assert not page.evaluate(LAYOUT_PROBLEMS)

    open_menu(page, UNBROKEN).get_by_role("menuitem", name="Delete").click()
    dialog = page.get_by_role("dialog", name=f"Delete provider {UNBROKEN}?")
    expect(dialog).to_be_visible()
    box = dialog.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= width and box["y"] + box["height"] <= HEIGHT, box
    for button in ["Delete", "Cancel"]:
        control = dialog.get_by_role("button", name=button, exact=True).or_(
            dialog.get_by_role("link", name=button, exact=True))
        assert _inside_window(page, control), f"{button} lies outside the window"


@pytest.mark.parametrize("width", NARROW)
def test_the_providers_table_stacks_and_others_scroll_in_their_box(admin_in_world, width):
    page, world = admin_in_world(width)
    page.goto("/manage/providers/")
    row = provider_row(page, world.long.name)
    labels = row.locator("td[data-label]").evaluate_all(
        "cells => cells.map(cell => getComputedStyle(cell, '::before').content)")
    assert labels == ['"Status: "', '"Organizations: "', '"Workspaces: "', '"Kubernetes: "', '"Last checked: "']
    assert row.bounding_box()["width"] <= width
    page.goto(f"/manage/providers/{world.long.id}")
    history = page.get_by_role("region", name="Check history")
    expect(history).to_be_visible()
    assert history.evaluate("el => el.scrollWidth > el.clientWidth"), "the history was squeezed, not boxed"
    history.focus()
    page.keyboard.press("ArrowRight")  # scrolls smoothly: wait for it
    page.wait_for_function("box => box.scrollLeft > 0", arg=history.element_handle(), timeout=3000)

    page.goto(f"/manage/providers/{world.long.id}/edit")
    preview = page.get_by_role("region", name="Preview")
    expect(preview).to_be_visible()
    assert preview.bounding_box()["y"] > _bottom(page.get_by_label("Affinity")), "the preview is not below the form"


def test_wide_screens_keep_the_navigation_inline(admin_in_world):
    page, _ = admin_in_world(WIDE, 800)
    page.goto("/manage/providers/")
    expect(page.get_by_role("button", name="Menu")).to_be_hidden()
    first = page.get_by_role("link", name="Workspaces", exact=True).bounding_box()
    for name in ["Workspace providers", "Audit log", "API tokens"]:
        link = page.get_by_role("link", name=name, exact=True)
        expect(link).to_be_visible()
        assert abs(link.bounding_box()["y"] - first["y"]) < 4, f"{name} is not on the navigation's line"
    assert page.locator(".topbar").bounding_box()["height"] < 60
    expect(page.locator("#provider-list thead")).to_be_visible()  # a table, not stacked rows
    assert not page.evaluate(LAYOUT_PROBLEMS)

    page.goto("/manage/providers/new")
    preview, name = page.get_by_role("region", name="Preview"), page.get_by_label("Name", exact=True)
    expect(preview).to_be_visible()
    assert preview.bounding_box()["x"] > name.bounding_box()["x"] + name.bounding_box()["width"], \
        "the preview is not beside the form"
    assert preview.bounding_box()["y"] < _bottom(page.get_by_label("Namespace", exact=True)), \
        "the preview does not start beside the first fields"


def test_a_table_box_is_a_tab_stop_only_while_it_scrolls(admin_in_world):
    page, _ = admin_in_world(WIDE, 800)
    page.goto("/manage/organizations/")
    box = page.get_by_role("region", name="Organizations")
    expect(box).not_to_have_attribute("tabindex", re.compile(".*"))  # it fits: nothing to scroll
    page.set_viewport_size({"width": 360, "height": HEIGHT})
    expect(box).to_have_attribute("tabindex", "0")
    page.keyboard.press("Tab")  # the site's name
    page.keyboard.press("Tab")  # Menu
    page.keyboard.press("Tab")
    expect(box).to_be_focused()


def _bottom(locator):
    box = locator.bounding_box()
    return box["y"] + box["height"]
