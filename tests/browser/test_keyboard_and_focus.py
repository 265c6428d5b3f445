"""What only a browser shows about menus, dialogs and the form: keyboard use, focus, URLs."""
import re

import pytest

from provider_admin.extensions import db
from provider_admin.models import Workspace

from .conftest import cancel_control, create_opener, expect, no_reload, open_menu, provider_row

pytestmark = pytest.mark.browser


@pytest.fixture
def east_page(page, sign_in, make_provider):
    """A signed-in admin on the providers page, with one provider "east"."""
    provider = make_provider("east")
    sign_in(page)
    expect(provider_row(page, "east")).to_be_visible()
    page.provider = provider
    return page


def test_menu_works_from_the_keyboard(east_page):
    page = east_page
    kebab = page.get_by_role("button", name="Actions for east")
    menu = page.get_by_role("menu", name="Actions for east")
    item = lambda name: menu.get_by_role("menuitem", name=name, exact=True)  # noqa: E731

    with no_reload(page):
        kebab.focus()
        page.keyboard.press("Space")  # a link with role=button must answer Space like a button
        expect(item("Edit")).to_be_focused()
        page.keyboard.press("ArrowDown")
        expect(item("Check now")).to_be_focused()
        page.keyboard.press("End")
        expect(item("Delete")).to_be_focused()
        page.keyboard.press("ArrowDown")
        expect(item("Edit")).to_be_focused()
        page.keyboard.press("ArrowUp")
        expect(item("Delete")).to_be_focused()
        page.keyboard.press("Home")
        expect(item("Edit")).to_be_focused()

        page.keyboard.press("Escape")
        expect(menu).to_have_count(0)
        expect(kebab).to_be_focused()
        expect(kebab).to_have_attribute("aria-expanded", "false")

        page.keyboard.press("Enter")
        expect(item("Edit")).to_be_focused()
        page.keyboard.press("Tab")
        expect(menu).to_have_count(0)
        expect(kebab).to_be_focused()


def test_dialog_keeps_focus_inside_and_gives_it_back(east_page):
    page = east_page
    kebab = page.get_by_role("button", name="Actions for east")

    with no_reload(page):
        kebab.focus()
        page.keyboard.press("Enter")
        expect(page.get_by_role("menuitem", name="Edit", exact=True)).to_be_focused()
        page.keyboard.press("ArrowDown")
        page.keyboard.press("ArrowDown")
        expect(page.get_by_role("menuitem", name="Cordon", exact=True)).to_be_focused()
        page.keyboard.press("Enter")

        dialog = page.get_by_role("dialog", name="Cordon provider east?")
        reason = dialog.get_by_label("Reason")
        expect(reason).to_be_focused()
        expect(page.get_by_role("menu")).to_have_count(0)
        page.keyboard.press("Tab")
        expect(dialog.get_by_role("button", name="Cordon", exact=True)).to_be_focused()
        page.keyboard.press("Tab")
        expect(cancel_control(dialog)).to_be_focused()
        page.keyboard.press("Tab")
        expect(reason).to_be_focused()
        page.keyboard.press("Shift+Tab")
        expect(cancel_control(dialog)).to_be_focused()

        page.keyboard.press("Escape")
        expect(page.get_by_role("dialog")).to_have_count(0)
        expect(kebab).to_be_focused()


def test_dialog_closes_on_a_backdrop_click_only(east_page):
    page = east_page
    with no_reload(page):
        open_menu(page, "east").get_by_role("menuitem", name="Delete").click()
        dialog = page.get_by_role("dialog", name="Delete provider east?")
        expect(dialog).to_be_visible()
        dialog.get_by_role("heading").click()
        expect(dialog).to_be_visible()
        page.mouse.click(5, 5)  # the backdrop covers the whole window
        expect(page.get_by_role("dialog")).to_have_count(0)
        expect(provider_row(page, "east")).to_be_visible()


def test_cancelling_the_form_puts_the_list_url_back(east_page):
    page = east_page
    with no_reload(page):
        create_opener(page).click()
        form = page.locator("#provider-form")
        expect(page).to_have_url(re.compile(r"/manage/providers/new$"))
        cancel_control(form).click()
        expect(form).to_have_count(0)
        expect(page).to_have_url(re.compile(r"/manage/providers/$"))
    page.reload()
    expect(provider_row(page, "east")).to_be_visible()
    expect(page.locator("#provider-form")).to_have_count(0)


def test_back_button_after_opening_the_form_shows_the_list(east_page):
    page = east_page
    open_menu(page, "east").get_by_role("menuitem", name="Edit").click()
    expect(page.get_by_role("heading", name="Edit east")).to_be_visible()
    expect(page).to_have_url(re.compile(rf"/manage/providers/{page.provider.id}/edit$"))
    page.go_back()
    expect(page).to_have_url(re.compile(r"/manage/providers/$"))
    expect(page.locator("#provider-form")).to_have_count(0)
    expect(provider_row(page, "east")).to_be_visible()


def test_reloaded_form_page_cancel_leads_back_to_the_list(east_page):
    """After Edit pushed its URL, a reload shows the form as its own page: Cancel must
    then lead to the list, not leave an empty page."""
    page = east_page
    open_menu(page, "east").get_by_role("menuitem", name="Edit").click()
    expect(page).to_have_url(re.compile(rf"/manage/providers/{page.provider.id}/edit$"))
    page.reload()
    expect(page.get_by_role("heading", name="Edit east")).to_be_visible()
    cancel_control(page).click()
    expect(page).to_have_url(re.compile(r"/manage/providers/$"))
    expect(provider_row(page, "east")).to_be_visible()


def test_dialog_as_its_own_page_is_not_closed_by_script(east_page):
    page = east_page
    page.goto(f"/manage/providers/{page.provider.id}/cordon")
    dialog = page.get_by_role("dialog", name="Cordon provider east?")
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_be_visible()
    cancel_control(dialog).click()
    expect(page).to_have_url(re.compile(r"/manage/providers/$"))
    expect(provider_row(page, "east")).to_be_visible()


def _menu_item(name, presses):
    """Open the row's menu with Enter on its button and walk to the item with the arrows."""
    def reach(page):
        kebab = page.get_by_role("button", name=f"Actions for {name}")
        kebab.focus()
        page.keyboard.press("Enter")
        expect(page.get_by_role("menuitem", name="Edit", exact=True)).to_be_focused()
        for key in presses:
            page.keyboard.press(key)
        return kebab
    return reach


def _page_link(name):
    def reach(page):
        link = page.get_by_role("link", name=name, exact=True)
        link.focus()
        return link
    return reach


KEYBOARD_DIALOGS = [
    pytest.param("/manage/providers/", _menu_item("west", ["End"]), "Delete provider west?", id="provider-delete"),
    pytest.param("/manage/providers/", _menu_item("east", ["End"]), "Delete provider east?",
                 id="provider-delete-refused"),
    pytest.param("/manage/providers/", _menu_item("east", ["ArrowDown", "ArrowDown"]), "Cordon provider east?",
                 id="provider-cordon"),
    pytest.param("/workspaces/{id}", _page_link("Delete"), "Delete workspace old?", id="workspace-delete"),
    pytest.param("/workspaces/{id}", _page_link("Remove record"), "Remove the record of old?",
                 id="workspace-forget"),
]


@pytest.mark.parametrize("url, reach, name", KEYBOARD_DIALOGS)
def test_every_dialog_works_from_the_keyboard(page, sign_in, make_org, make_provider, url, reach, name):
    """Enter opens it, Tab and Shift+Tab go round inside it, Escape closes it and focus
    goes back to the control that opened it."""
    admin = sign_in(page)
    org = make_org("Acme", members=[admin])
    east = make_provider("east", organizations=[org])
    make_provider("west", organizations=[org])
    workspace = Workspace(name="old", owner=admin, organization=org, provider=east, image="img",
                          cpu="1", memory="1Gi", disk="10Gi", status="failed")
    db.session.add(workspace)
    db.session.commit()
    page.goto(url.format(id=workspace.id))
    focus_inside = "() => document.querySelector('#dialog-slot dialog').contains(document.activeElement)"

    with no_reload(page):
        opener = reach(page)
        page.keyboard.press("Enter")
        dialog = page.get_by_role("dialog", name=name)
        expect(dialog).to_be_visible()
        expect(page.get_by_role("menu")).to_have_count(0)
        page.wait_for_function(focus_inside)
        stops = dialog.locator("input:not([type=hidden]):not([disabled]), button:not([disabled]), a[href]").count()
        for key in ["Tab"] * (stops + 1) + ["Shift+Tab"] * (stops + 1):
            page.keyboard.press(key)
            assert page.evaluate(focus_inside), f"{key} took the focus out of the dialog"

        page.keyboard.press("Escape")
        expect(page.get_by_role("dialog")).to_have_count(0)
        expect(opener).to_be_focused()


def test_menu_with_buttons_and_links_from_the_keyboard(east_page, make_provider):
    """A cordoned row's menu mixes links and buttons (Uncordon): the arrows go through both,
    and Shift+Tab leaves it on its button as Tab does."""
    page = east_page
    make_provider("west", cordoned=True, cordon_reason="Node pool upgrade")
    page.reload()
    kebab = page.get_by_role("button", name="Actions for west")
    menu = page.get_by_role("menu", name="Actions for west")

    with no_reload(page):
        kebab.focus()
        page.keyboard.press("Enter")
        expect(kebab).to_have_attribute("aria-expanded", "true")
        for key, name in [("Home", "Edit"), ("ArrowDown", "Check now"), ("ArrowDown", "Uncordon"),
                          ("ArrowDown", "Delete"), ("ArrowDown", "Edit"), ("ArrowUp", "Delete")]:
            page.keyboard.press(key)
            expect(menu.get_by_role("menuitem", name=name, exact=True)).to_be_focused()
        page.keyboard.press("Shift+Tab")
        expect(menu).to_have_count(0)
        expect(kebab).to_be_focused()
        expect(kebab).to_have_attribute("aria-expanded", "false")
