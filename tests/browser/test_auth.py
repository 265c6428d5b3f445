"""First run and sign-in in a real browser."""
import re

import pytest

from .conftest import expect

pytestmark = pytest.mark.browser


def test_first_run_setup_creates_the_admin_and_lands_on_providers(page):
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/setup$"))

    page.get_by_label("Email").fill("Ada@Example.com")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Create account").click()

    expect(page.get_by_role("heading", name="Workspace providers", level=1)).to_be_visible()
    expect(page).to_have_url(re.compile(r"/manage/providers/$"))
    expect(page.get_by_role("status").filter(has_text="Welcome!")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_contain_text("Workspace providers")


def test_setup_page_shows_errors_at_the_fields(page):
    page.goto("/setup")
    page.get_by_label("Email").fill("not-an-email")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Create account").click()

    expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Email")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("heading", name="Set up Provider Admin")).to_be_visible()


def test_sign_in_leads_a_manager_to_the_providers(page, sign_in):
    sign_in(page, role="manager")
    expect(page.get_by_role("heading", name="Workspace providers", level=1)).to_be_visible()
