"""A member's workspaces in a real browser: the form, the live build log, deletion.

The provider is the Kubernetes API emulator over HTTPS, checked Ready for real; the build
and the teardown run in the app's background threads against it.
"""
import re

import pytest

from provider_admin.checks import check_now
from provider_admin.extensions import db
from provider_admin.models import Workspace

from .conftest import expect, no_reload

pytestmark = pytest.mark.browser

# The emulator holds each Pod creation this long, so the log visibly grows while the page is open.
POD_DELAY = 4.0
LIVE_MS = 20_000


@pytest.fixture
def app_config(app_config):
    # The build's requests must outlive the emulator's delay.
    return {**app_config, "CHECK_TIMEOUT": POD_DELAY + 5}


@pytest.fixture
def org(make_org):
    return make_org("Acme")


@pytest.fixture
def east(kube, kube_provider, org):
    """A provider on the emulator that Acme may use, checked Ready."""
    provider = kube_provider(kube, "east", namespace="ws", organizations=[org])
    kube.deploy_marker("east", namespace="ws")
    assert check_now(provider).ok
    db.session.remove()
    return provider


@pytest.fixture
def member_page(page, sign_in, org):
    """A signed-in member of Acme, on their workspaces."""
    sign_in(page, "member", organizations=[org])
    expect(page.get_by_role("heading", name="Workspaces", level=1)).to_be_visible()
    return page


def choose_organization(page, name):
    """Pick the organization and wait for the form to come back with its providers: what is
    typed into the old form while the new one is on its way would be lost."""
    page.locator("#workspace-form").evaluate("form => form.dataset.stale = '1'")
    with page.expect_request(re.compile(r"/workspaces/new\?")) as sent:
        page.get_by_label("Organization").select_option(label=name)
    expect(page.locator("#workspace-form[data-stale]")).to_have_count(0)
    expect(page.locator("#workspace-form")).to_be_visible()
    return sent.value


def fill_form(page, name, provider="east", cpu="1", memory="2Gi", disk="5Gi"):
    page.get_by_role("link", name="Create workspace").click()
    expect(page.get_by_role("heading", name="Create workspace", level=1)).to_be_visible()
    choose_organization(page, "Acme")
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Workspace provider").select_option(label=provider)
    page.get_by_label("Image").fill("codercom/enterprise-base:ubuntu")
    page.get_by_label("CPU").fill(cpu)
    page.get_by_label("Memory").fill(memory)
    page.get_by_label("Disk").fill(disk)


def create_workspace(page, name, **fields):
    """Fill and send the form; returns the new workspace's id from the page it leads to."""
    fill_form(page, name, **fields)
    page.get_by_role("button", name="Create workspace").click()
    page.wait_for_url(re.compile(r"/workspaces/\d+$"))
    return int(page.url.rsplit("/", 1)[1])


def heading(page, name):
    return page.get_by_role("heading", name=re.compile(rf"^{name}\b"), level=1)


def test_build_log_fills_in_live(member_page, kube, east):
    page = member_page
    kube.slow("post /api/v1/namespaces/ws/pods", POD_DELAY)
    workspace_id = create_workspace(page, "dev")

    log = page.locator("#build-log")
    expect(heading(page, "dev")).to_contain_text("Building")
    expect(page.get_by_text("1 CPU · 2Gi memory · 5Gi disk")).to_be_visible()
    expect(log).to_contain_text("Building on provider east, namespace ws")
    expect(log).not_to_contain_text("Created Pod")  # the emulator is still holding it back

    names = db.session.get(Workspace, workspace_id).object_base
    with no_reload(page):
        expect(log).to_contain_text(f"Created PersistentVolumeClaim {names}-home")
        expect(log).to_contain_text(f"Created Pod {names} (image codercom/enterprise-base:ubuntu, "
                                    "cpu 1, memory 2Gi", timeout=LIVE_MS)
        expect(heading(page, "dev")).to_contain_text("Running")
        expect(log.get_by_role("listitem")).to_have_count(3)
        expect(page.get_by_role("heading", name="Pod", level=2)).to_be_visible()
        expect(page.get_by_role("link", name="Delete")).to_be_visible()

    pod = kube.get("v1/pods", "ws", names)
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "1", "memory": "2Gi"}


def test_form_says_why_providers_are_not_offered(member_page, east, make_provider, make_org, org):
    beta = make_org("Beta")
    make_provider("north", organizations=[org], status="ready", cordoned=True, cordon_reason="node pool upgrade")
    make_provider("south", organizations=[beta], status="ready")
    make_provider("west", organizations=[org], status="error", status_message="Connection refused")
    page = member_page
    page.get_by_role("link", name="Create workspace").click()

    provider = page.get_by_label("Workspace provider")
    options = provider.get_by_role("option")
    expect(options).to_have_text([
        "east",
        "north — cordoned: node pool upgrade",
        "west — not ready (Error)",
    ])  # south is Beta's only: not for a member of Acme to see
    for disabled in ("north", "west"):
        expect(options.filter(has_text=disabled)).to_be_disabled()
    expect(options.filter(has_text="east")).to_be_enabled()
    expect(provider).to_have_value(str(east.id))
    expect(page.locator("#provider-field")).to_contain_text(
        "Only providers that are Ready, not cordoned and open to the organization can be chosen")


def test_form_for_another_organization_offers_its_providers(page, sign_in, east, make_org, org):
    beta = make_org("Beta")
    sign_in(page, "member", organizations=[org, beta])
    page.get_by_role("link", name="Create workspace").click()
    page.get_by_label("Name", exact=True).fill("dev")
    options = page.get_by_label("Workspace provider").get_by_role("option")
    expect(options).to_have_text(["east"])

    with no_reload(page):
        sent = choose_organization(page, "Beta")
        assert "csrf_token" not in sent.url  # a token in a URL ends up in access logs
        expect(options).to_have_count(0)  # east is not Beta's: a member does not see it
        expect(page.locator("#provider-field")).to_contain_text(
            "No provider can take new workspaces for Beta right now.")
        expect(page.get_by_label("Name", exact=True)).to_have_value("dev")  # what was typed stays

    page.get_by_role("button", name="Create workspace").click()
    expect(page.locator("#provider-field")).to_contain_text("Choose a workspace provider.")
    assert db.session.scalar(db.select(db.func.count(Workspace.id))) == 0


def test_delete_from_the_workspace_page_removes_it(member_page, kube, east):
    page = member_page
    workspace_id = create_workspace(page, "dev")
    expect(heading(page, "dev")).to_contain_text("Running", timeout=LIVE_MS)
    pod = db.session.get(Workspace, workspace_id).object_base
    assert kube.get("v1/pods", "ws", pod) is not None

    # Held back a little, so that the page is seen following the deletion.
    kube.slow(f"delete /api/v1/namespaces/ws/persistentvolumeclaims/{pod}-home", 3.0)

    page.get_by_role("link", name="Delete").click()
    dialog = page.get_by_role("dialog", name="Delete workspace dev?")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Delete").click()

    expect(heading(page, "dev")).to_contain_text("Deleting")
    expect(page.get_by_role("link", name="Delete")).to_have_count(0)
    log = page.locator("#build-log")
    expect(log).to_contain_text("Deleting the workspace's objects from namespace ws")
    with no_reload(page):
        expect(log).to_contain_text(f"Deleted Pod {pod}")
    expect(page).to_have_url(re.compile(r"/workspaces/$"), timeout=LIVE_MS)
    expect(page.get_by_role("status").filter(has_text="The workspace was deleted.")).to_be_visible()
    expect(page.locator("#workspace-list")).to_contain_text("No workspaces yet.")
    assert kube.get("v1/pods", "ws", pod) is None
    assert kube.get("v1/persistentvolumeclaims", "ws", f"{pod}-home") is None
    db.session.expire_all()
    assert db.session.get(Workspace, workspace_id) is None
