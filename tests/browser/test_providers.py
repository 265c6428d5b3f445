"""The providers page in a real browser: menus, the form, dialogs, CSRF over HTMX, and no-JS."""
import json
import re

import pytest

from provider_admin.extensions import db
from provider_admin.models import Provider, Workspace

from .conftest import cancel_control, create_opener, create_provider, expect, no_reload, open_menu, provider_row

pytestmark = pytest.mark.browser

# Pasted from the source document: the key is included and the braces are missing.
MALFORMED_TOLERATIONS = '"pod_tolerations": [ "key": "com.coder.workspace", "operator": "Exists", "effect": "NoSchedule"'
TOLERATIONS = [{"key": "com.coder.workspace", "operator": "Exists", "effect": "NoSchedule"}]


@pytest.fixture
def providers_page(page, sign_in):
    """A signed-in admin on the Workspace providers page."""

    def open_page():
        sign_in(page)  # an admin lands on the providers page
        expect(page.get_by_role("heading", name="Workspace providers", level=1)).to_be_visible()
        return page

    return open_page


def test_actions_menu_opens_and_closes(providers_page, make_provider):
    make_provider("east")
    make_provider("west")
    page = providers_page()
    kebab = page.get_by_role("button", name="Actions for east")
    expect(kebab).to_have_attribute("aria-expanded", "false")

    with no_reload(page):
        menu = open_menu(page, "east")
        for item in ("Edit", "Check now", "Cordon", "Delete"):
            expect(menu.get_by_role("menuitem", name=item, exact=True)).to_be_visible()
        expect(menu.get_by_role("menuitem")).to_have_count(4)
        expect(kebab).to_have_attribute("aria-expanded", "true")
        expect(menu.get_by_role("menuitem", name="Edit")).to_be_focused()

        page.keyboard.press("Escape")
        expect(menu).to_have_count(0)
        expect(kebab).to_have_attribute("aria-expanded", "false")

        open_menu(page, "east")
        page.get_by_role("heading", name="Workspace providers", level=1).click()
        expect(menu).to_have_count(0)
        expect(kebab).to_have_attribute("aria-expanded", "false")

        # A second click on the button closes its menu; opening another closes the first.
        open_menu(page, "east")
        kebab.click()
        expect(menu).to_have_count(0)
        # (west's row is below east's, so its open menu does not cover east's button)
        west_menu = open_menu(page, "west")
        open_menu(page, "east")
        expect(west_menu).to_have_count(0)
        expect(page.get_by_role("button", name="Actions for west")).to_have_attribute("aria-expanded", "false")
        expect(page.get_by_role("menu")).to_have_count(1)


def test_create_provider_adds_a_pending_row(providers_page, make_org, kube):
    make_org("Acme")
    page = providers_page()

    with no_reload(page):
        create_opener(page).click()
        form = page.locator("#provider-form")
        expect(form.get_by_role("heading", name="Create provider")).to_be_visible()
        expect(page).to_have_url(re.compile(r"/manage/providers/new$"))
        create_provider(page, "west", kube)

        # The save checks the cluster at once: reachable but not deployed yet is Pending.
        row = provider_row(page, "west")
        expect(row).to_be_visible()
        expect(row.get_by_text("Pending", exact=True)).to_be_visible()
        expect(row).to_contain_text("Acme")
        expect(form).to_have_count(0)
        expect(page.locator("#flashes")).to_contain_text("Provider west created.")
    expect(page).to_have_url(re.compile(r"/manage/providers/$"))


def test_create_form_errors_are_swapped_in_place(providers_page):
    page = providers_page()
    with no_reload(page):
        create_opener(page).click()
        page.get_by_label("Name", exact=True).fill("west")
        page.get_by_label("Cluster address").fill("http://west.example.com")
        page.get_by_role("button", name="Create Provider", exact=True).click()

        expect(page.get_by_role("alert").filter(has_text="Nothing was saved")).to_be_visible()
        expect(page.get_by_label("Cluster address")).to_have_attribute("aria-invalid", "true")
        expect(page.get_by_label("Namespace")).to_have_attribute("aria-invalid", "true")
        expect(page.get_by_label("Name", exact=True)).to_have_value("west")
    assert db.session.scalar(db.select(Provider).filter_by(name="west")) is None


def test_edit_shows_json_error_at_the_field_then_saves(providers_page, kube_provider, kube, make_org):
    org = make_org("Acme")
    provider = kube_provider(kube, "east", namespace="ws", organizations=[org])
    kube.deploy_marker("east", namespace="coder-workspaces")
    page = providers_page()
    row = provider_row(page, "east")
    expect(row.get_by_text("Pending", exact=True)).to_be_visible()

    with no_reload(page):
        open_menu(page, "east").get_by_role("menuitem", name="Edit").click()
        form = page.locator("#provider-form")
        expect(form.get_by_role("heading", name="Edit east")).to_be_visible()
        expect(page).to_have_url(re.compile(rf"/manage/providers/{provider.id}/edit$"))
        expect(page.get_by_role("menu")).to_have_count(0)

        page.get_by_label("Namespace").fill("coder-workspaces")
        tolerations = page.get_by_label("Pod tolerations")
        tolerations.fill(MALFORMED_TOLERATIONS)
        page.get_by_role("button", name="Update Provider").click()

        tolerations = page.get_by_label("Pod tolerations")
        expect(tolerations).to_have_attribute("aria-invalid", "true")
        expect(tolerations).to_have_accessible_description(
            re.compile(r'Invalid JSON at line 1, column \d+: paste only the value, without the "pod_tolerations": key'))
        expect(form.locator("#pod_tolerations-field .error")).to_contain_text("Invalid JSON")
        expect(form.locator(".error")).to_have_count(1)
        expect(page.get_by_role("alert").filter(has_text="Nothing was saved")).to_be_visible()
        expect(page.get_by_label("Namespace")).to_have_value("coder-workspaces")
        expect(row).not_to_contain_text("coder-workspaces")

        tolerations.fill(json.dumps(TOLERATIONS))
        page.get_by_role("button", name="Update Provider").click()

        expect(form).to_have_count(0)
        expect(page.locator("#flashes")).to_contain_text("Provider east updated.")
        expect(row).to_contain_text("coder-workspaces")
        # The save re-checked the cluster: the new namespace holds this provider's marker.
        expect(row.get_by_text("Ready", exact=True)).to_be_visible()
    db.session.expire_all()
    saved = db.session.get(Provider, provider.id)
    assert saved.namespace == "coder-workspaces"
    assert saved.pod_tolerations == TOLERATIONS


def test_edit_conflict_is_shown_in_the_form(providers_page, kube_provider, kube):
    provider = kube_provider(kube, "east", namespace="ws")
    page = providers_page()

    with no_reload(page):
        open_menu(page, "east").get_by_role("menuitem", name="Edit").click()
        page.get_by_label("Namespace").fill("coder-workspaces")
        provider.storage_class = "fast"  # someone else saves meanwhile
        db.session.commit()
        page.get_by_role("button", name="Update Provider").click()

        # 409 is swapped (htmx-config in base.html), keeping what was typed.
        expect(page.get_by_role("alert").filter(has_text="Someone else saved this provider")).to_be_visible()
        expect(page.get_by_label("Namespace")).to_have_value("coder-workspaces")
        page.get_by_role("button", name="Update Provider").click()
        expect(page.locator("#provider-form")).to_have_count(0)
        expect(provider_row(page, "east")).to_contain_text("coder-workspaces")


def test_form_notices_follow_the_checkboxes(providers_page, make_org):
    make_org("Acme")
    page = providers_page()
    with no_reload(page):
        create_opener(page).click()
        e2e_notice = page.get_by_role("note").filter(has_text="regenerate their SSH configuration")
        empty_warning = page.get_by_role("note").filter(has_text="No organization selected")
        expect(page.get_by_label("Name", exact=True)).to_be_visible()

        expect(e2e_notice).to_be_hidden()
        page.get_by_label("Enable end-to-end encryption").check()
        expect(e2e_notice).to_be_visible()
        expect(e2e_notice).to_contain_text("coder config-ssh")
        page.get_by_label("Enable end-to-end encryption").uncheck()
        expect(e2e_notice).to_be_hidden()

        expect(empty_warning).to_be_visible()
        page.get_by_label("Acme").check()
        expect(empty_warning).to_be_hidden()
        page.get_by_label("Acme").uncheck()
        expect(empty_warning).to_be_visible()


def test_form_cancel_closes_the_form(providers_page, make_provider):
    make_provider("east")
    page = providers_page()
    with no_reload(page):
        create_opener(page).click()
        form = page.locator("#provider-form")
        expect(form).to_be_visible()
        cancel_control(form).click()
        expect(form).to_have_count(0)
        expect(provider_row(page, "east")).to_be_visible()


def test_delete_dialog_cancel_then_delete(providers_page, make_provider):
    make_provider("east")
    make_provider("west")
    page = providers_page()

    with no_reload(page):
        open_menu(page, "east").get_by_role("menuitem", name="Delete").click()
        dialog = page.get_by_role("dialog", name="Delete provider east?")
        expect(dialog).to_be_visible()
        expect(page.get_by_role("menu")).to_have_count(0)
        expect(dialog.get_by_role("button", name="Delete", exact=True)).to_be_enabled()
        cancel_control(dialog).click()
        expect(page.get_by_role("dialog")).to_have_count(0)
        expect(provider_row(page, "east")).to_be_visible()

        open_menu(page, "east").get_by_role("menuitem", name="Delete").click()
        expect(dialog).to_be_visible()
        page.keyboard.press("Escape")
        expect(page.get_by_role("dialog")).to_have_count(0)

        open_menu(page, "east").get_by_role("menuitem", name="Delete").click()
        dialog.get_by_role("button", name="Delete", exact=True).click()
        expect(page.get_by_role("dialog")).to_have_count(0)
        expect(provider_row(page, "east")).to_have_count(0)
        expect(provider_row(page, "west")).to_be_visible()
        expect(page.locator("#flashes")).to_contain_text("Provider east deleted.")
    assert db.session.scalar(db.select(Provider).filter_by(name="east")) is None


def test_delete_is_refused_while_the_provider_has_workspaces(providers_page, make_provider, make_org, actions):
    owner = actions.user("member", username="alice")
    org = make_org("Acme", members=[owner])
    provider = make_provider("east", organizations=[org])
    db.session.add(Workspace(name="dev", owner=owner, organization=org, provider=provider,
                             image="img", cpu="1", memory="1Gi", disk="10Gi"))
    db.session.commit()
    page = providers_page()

    with no_reload(page):
        open_menu(page, "east").get_by_role("menuitem", name="Delete").click()
        dialog = page.get_by_role("dialog", name="Delete provider east?")
        expect(dialog).to_be_visible()
        expect(dialog.get_by_role("alert")).to_contain_text("east still has 1 workspace")
        expect(dialog.get_by_role("listitem")).to_have_text(["alice/dev"])
        expect(dialog.get_by_role("button", name="Delete", exact=True)).to_be_disabled()
        expect(cancel_control(dialog)).to_be_focused()  # the first control that can act
        cancel_control(dialog).click()
        expect(page.get_by_role("dialog")).to_have_count(0)
    expect(provider_row(page, "east")).to_be_visible()


def test_cordon_and_uncordon(providers_page, make_provider):
    make_provider("east")
    page = providers_page()
    row = provider_row(page, "east")
    expect(row.get_by_text("Cordoned", exact=True)).to_have_count(0)

    with no_reload(page):
        open_menu(page, "east").get_by_role("menuitem", name="Cordon").click()
        dialog = page.get_by_role("dialog", name="Cordon provider east?")
        expect(dialog).to_be_visible()
        expect(dialog.get_by_label("Reason")).to_be_focused()

        dialog.get_by_role("button", name="Cordon", exact=True).click()  # no reason: 422 in place
        expect(dialog.get_by_label("Reason")).to_have_accessible_description(re.compile("Say why"))

        dialog.get_by_label("Reason").fill("Node pool upgrade until Friday")
        dialog.get_by_role("button", name="Cordon", exact=True).click()
        expect(page.get_by_role("dialog")).to_have_count(0)
        expect(row.get_by_text("Cordoned", exact=True)).to_be_visible()
        expect(row).to_contain_text("Cordoned: Node pool upgrade until Friday")
        expect(page.locator("#flashes")).to_contain_text("Provider east cordoned")

        menu = open_menu(page, "east")
        expect(menu.get_by_role("menuitem", name="Cordon", exact=True)).to_have_count(0)
        menu.get_by_role("menuitem", name="Uncordon").click()
        expect(row.get_by_text("Cordoned", exact=True)).to_have_count(0)
        expect(row).not_to_contain_text("Node pool upgrade")
        expect(page.get_by_role("menu")).to_have_count(0)

        expect(open_menu(page, "east").get_by_role("menuitem", name="Cordon", exact=True)).to_be_visible()


def test_htmx_request_carries_the_csrf_token_header(providers_page, make_provider):
    make_provider("east")
    page = providers_page()
    header_token = json.loads(page.locator("body").get_attribute("hx-headers"))["X-CSRFToken"]
    assert header_token

    with no_reload(page):
        open_menu(page, "east").get_by_role("menuitem", name="Cordon").click()
        dialog = page.get_by_role("dialog", name="Cordon provider east?")
        dialog.get_by_label("Reason").fill("Maintenance")
        # Without the form's hidden field, only the header can carry the token.
        dialog.locator("input[name=csrf_token]").evaluate("input => input.remove()")
        with page.expect_response(lambda r: r.request.method == "POST" and "/cordon" in r.url) as info:
            dialog.get_by_role("button", name="Cordon", exact=True).click()
        response = info.value
        assert response.status == 200
        assert response.request.headers["x-csrftoken"] == header_token
        assert response.request.headers["hx-request"] == "true"
        expect(provider_row(page, "east").get_by_text("Cordoned", exact=True)).to_be_visible()


def test_htmx_request_with_a_bad_csrf_token_shows_the_error(providers_page, make_provider):
    make_provider("east")
    page = providers_page()

    with no_reload(page):
        open_menu(page, "east").get_by_role("menuitem", name="Cordon").click()
        dialog = page.get_by_role("dialog", name="Cordon provider east?")
        dialog.get_by_label("Reason").fill("Maintenance")
        dialog.locator("input[name=csrf_token]").evaluate("input => input.remove()")
        page.locator("body").evaluate(
            """body => body.setAttribute("hx-headers", JSON.stringify({"X-CSRFToken": "forged"}))""")
        dialog.get_by_role("button", name="Cordon", exact=True).click()
        expect(page.locator("#flashes").get_by_role("alert")).to_contain_text("The form could not be verified")
    db.session.expire_all()
    assert db.session.scalar(db.select(Provider).filter_by(name="east")).cordoned is False


def test_check_now_updates_the_badge_in_place(providers_page, kube_provider, kube):
    kube_provider(kube, "east", namespace="ws")
    page = providers_page()
    row = provider_row(page, "east")
    expect(row.get_by_text("Pending", exact=True)).to_be_visible()
    kube.deploy_marker("east", namespace="ws")

    with no_reload(page):
        open_menu(page, "east").get_by_role("menuitem", name="Check now").click()
        expect(row.get_by_text("Ready", exact=True)).to_be_visible()
        expect(row).to_contain_text("v1.33")
        expect(page.get_by_role("menu")).to_have_count(0)


def test_badges_refresh_by_polling(app, providers_page, make_provider):
    provider = make_provider("east")
    app.config["POLL_SECONDS"] = 1  # read when the page renders its poll element
    page = providers_page()
    row = provider_row(page, "east")
    expect(row.get_by_text("Pending", exact=True)).to_be_visible()

    with no_reload(page):
        # What a scheduled check in another process would write.
        provider.status, provider.status_message = "error", "Cannot resolve the host name k8s.example.com."
        provider.display_version += 1
        db.session.commit()
        expect(row.get_by_text("Error", exact=True)).to_be_visible()
        expect(row).to_contain_text("Cannot resolve the host name k8s.example.com.")


def test_edit_works_without_javascript(new_page, sign_in, kube_provider, kube):
    kube_provider(kube, "east", namespace="ws")
    page = new_page(java_script_enabled=False)
    sign_in(page)
    expect(page.get_by_role("heading", name="Workspace providers", level=1)).to_be_visible()

    page.get_by_role("button", name="Actions for east").click()
    expect(page.get_by_role("heading", name="Actions for east")).to_be_visible()
    page.get_by_role("menu", name="Actions for east").get_by_role("menuitem", name="Edit").click()
    expect(page.get_by_role("heading", name="Edit east")).to_be_visible()

    page.get_by_label("Namespace").fill("coder-workspaces")
    page.get_by_role("button", name="Update Provider").click()

    expect(page).to_have_url(re.compile(r"/manage/providers/$"))
    expect(page.get_by_role("status").filter(has_text="Provider east updated.")).to_be_visible()
    expect(provider_row(page, "east")).to_contain_text("coder-workspaces")
