"""Single sign-on in a real browser, through a real OpenID Connect provider's pages: the mapped
role and organizations on landing, sign-out at the provider, and the groups re-applied at the
next sign-in."""
import re

import pytest

from provider_admin.extensions import db
from provider_admin.models import Role, User
from tests.oidc import idp, sso_config  # noqa: F401  (fixture)

from .conftest import expect

pytestmark = pytest.mark.browser


@pytest.fixture
def app_config(database_url, idp):
    return {"SERVER_NAME": None, "CHECK_TIMEOUT": 2.0} | sso_config(idp, OIDC_BUTTON_LABEL="Sign in with Company SSO")


@pytest.fixture
def sso_page(new_page):
    page = new_page()
    # The provider's pages link a stylesheet from a CDN, which an offline test machine cannot reach.
    page.context.route(re.compile(r"^https://cdn\."), lambda route: route.abort())
    return page


def sign_in_at_the_provider(page, sub):
    page.goto("/login")
    page.get_by_role("link", name="Sign in with Company SSO").click()
    expect(page.get_by_role("heading", name="Authorize Client")).to_be_visible()
    page.get_by_placeholder("sub").fill(sub)
    page.get_by_role("button", name="Authorize", exact=True).click()


def ada():
    db.session.expire_all()
    user = db.session.scalar(db.select(User).filter_by(email="ada@example.com"))
    return user.role, [o.name for o in user.organizations]


def test_sign_in_lands_with_the_mapped_role_and_organizations_and_again_after_the_groups_change(
        sso_page, actions, idp, make_org):
    page = sso_page
    actions.user(Role.ADMIN.value, email="root@example.com", username="root")
    make_org("Platform")
    make_org("Developers")
    idp.set_user("ada", email="ada@example.com", email_verified=True, groups=["platform-team"])

    sign_in_at_the_provider(page, "ada")
    expect(page.get_by_role("heading", name="Workspace providers", level=1)).to_be_visible()
    expect(page.locator(".signout .who")).to_have_text(re.compile(r"ada · Site manager"))
    assert ada() == ("manager", ["Platform"])

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="End Session")).to_be_visible()  # at the provider
    page.get_by_role("button", name="End session").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/login(\?.*)?$"))

    idp.set_user("ada", email="ada@example.com", email_verified=True, groups=["developers"])
    sign_in_at_the_provider(page, "ada")
    expect(page.get_by_role("heading", name="Workspaces", level=1)).to_be_visible()
    expect(page.locator(".signout .who")).to_have_text(re.compile(r"ada · Member"))
    expect(page.get_by_role("navigation", name="Main")).not_to_contain_text("Workspace providers")
    assert ada() == ("member", ["Developers"])


def test_a_denied_consent_shows_its_page_and_a_way_back(sso_page, actions):
    page = sso_page
    actions.user(Role.ADMIN.value, email="root@example.com", username="root")
    page.goto("/login")
    page.get_by_role("link", name="Sign in with Company SSO").click()
    page.get_by_role("button", name="Deny").click()
    expect(page.get_by_role("heading", name="Sign-in cancelled")).to_be_visible()
    expect(page.get_by_role("link", name="Sign in with Company SSO")).to_be_visible()
    expect(page.get_by_role("link", name="Sign in with email and password")).to_be_visible()
