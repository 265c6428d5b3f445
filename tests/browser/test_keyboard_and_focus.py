"""What only a browser shows about menus, dialogs and the form: keyboard use, focus, URLs."""
import re

import pytest

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
