"""Every change to what a provider's row shows reaches an open page through its badge poll,
whoever writes it: the database bumps display_version (migration 0010's triggers), so no
write path can forget it. Each test opens the list, makes one kind of change through the app's
own write path, and polls as the browser does (GET with the page's fingerprint, then POST of
the versions the page shows)."""
import json
import re

import pytest
import sqlalchemy as sa

from provider_admin.checks.results import Outcome, save_results
from provider_admin.extensions import db
from provider_admin.kube import CheckResult
from provider_admin.models import Organization, Provider, Workspace, utcnow

from .test_providers import edit_form
from .test_status_poll import get_poll, known_of, poll_of, post_poll

LIST = "/manage/providers/"


@pytest.fixture
def admin(actions):
    return actions.login()


class OpenPage:
    """The list as a browser has it open: its poll and the versions its rows show."""

    def __init__(self, client, actions, url=LIST):
        self.client, self.actions = client, actions
        page = client.get(url).text
        self.poll_url, self.fingerprint = poll_of(page)
        self.known = known_of(page)

    def poll(self) -> str:
        """The poll's answer: the GET says stale, the POST answers with the changed rows."""
        assert get_poll(self.client, self.poll_url, self.fingerprint).status_code == 200
        answer = post_poll(self.actions, self.poll_url, self.fingerprint, self.known)
        assert answer.status_code == 200
        return answer.text

    def changed_row(self, provider_id: int) -> str:
        answer = self.poll()
        row = re.search(rf'<tr id="provider-row-{provider_id}".*?</tr>', answer, re.S)
        assert row, answer
        # Then quiet again with the fingerprint the answer brought.
        assert get_poll(self.client, self.poll_url, poll_of(answer)[1]).status_code == 204
        return row.group(0)


def _version(provider_id: int) -> int:
    db.session.expire_all()
    return db.session.get(Provider, provider_id).display_version


def test_a_provider_field_edit(admin, actions, client, make_provider):
    provider = make_provider("east")
    page = OpenPage(client, actions)
    response = actions.post(f"/manage/providers/{provider.id}/edit", edit_form(provider, name="east-renamed", token="sa-token-123"))
    assert response.status_code == 303
    assert ">east-renamed</a>" in page.changed_row(provider.id)


def test_a_status_change_by_a_check(admin, actions, client, make_provider):
    provider = make_provider("east", status="ready")
    page = OpenPage(client, actions)
    result = CheckResult(ok=False, category="unreachable", message="Cannot reach the cluster.")
    save_results([Outcome(provider.id, result, "manual", True, generation=provider.check_generation)])
    row = page.changed_row(provider.id)
    assert ">Error<" in row and "Cannot reach the cluster." in row


def test_a_check_that_changes_nothing_shown_leaves_the_page_quiet(admin, actions, client, make_provider):
    provider = make_provider("east", status="ready", status_category="ok", last_checked_at=utcnow())
    page = OpenPage(client, actions)
    save_results([Outcome(provider.id, CheckResult(ok=True, category="ok", message=""), "scheduled", False,
                          generation=provider.check_generation)])
    assert get_poll(client, page.poll_url, page.fingerprint).status_code == 204


@pytest.mark.parametrize("action", ["cordon", "uncordon"])
def test_cordon_and_uncordon(admin, actions, client, make_provider, action):
    provider = make_provider("east", cordoned=action == "uncordon", cordon_reason="Old")
    page = OpenPage(client, actions)
    if action == "cordon":
        actions.post(f"/manage/providers/{provider.id}/cordon", {"reason": "Maintenance"})
        assert "Cordoned" in page.changed_row(provider.id)
    else:
        actions.post(f"/manage/providers/{provider.id}/uncordon")
        assert "Cordoned" not in page.changed_row(provider.id)


def test_an_organization_rename(admin, actions, client, make_provider, make_org):
    acme = make_org("Acme")
    east, west = make_provider("east", organizations=[acme]), make_provider("west")
    page = OpenPage(client, actions)
    response = actions.post(f"/manage/organizations/{acme.id}", {"name": "Acme Corp"})
    assert response.status_code == 303
    answer = page.poll()
    assert f'id="provider-row-{east.id}"' in answer and "Acme Corp" in answer
    assert f'id="provider-row-{west.id}"' not in answer


def test_an_allowlist_change(admin, actions, client, make_provider, make_org):
    acme = make_org("Acme")
    provider = make_provider("east")
    page = OpenPage(client, actions)
    response = actions.post(f"/manage/providers/{provider.id}/edit",
                            edit_form(provider, organizations=str(acme.id), token="sa-token-123"))
    assert response.status_code == 303
    assert "Acme" in page.changed_row(provider.id)


def test_an_organization_deleted_from_the_allowlist_by_sql(admin, actions, client, make_provider, make_org):
    acme = make_org("Acme")
    provider = make_provider("east", organizations=[acme])
    page = OpenPage(client, actions)
    db.session.execute(sa.text("DELETE FROM provider_organizations"))
    db.session.commit()
    assert "None: nobody can provision" in page.changed_row(provider.id)


@pytest.mark.parametrize("change", ["create", "delete"])
def test_a_workspace_count(admin, actions, client, make_provider, make_org, change):
    provider, org = make_provider("east"), make_org("Acme")

    def workspace():
        return Workspace(name="w", owner=admin, organization=org, provider=provider, image="i",
                         cpu="1", memory="1Gi", disk="1Gi", status="running")

    if change == "delete":
        db.session.add(existing := workspace())
        db.session.commit()
    page = OpenPage(client, actions)
    if change == "create":
        db.session.add(workspace())
    else:
        db.session.delete(existing)
    db.session.commit()
    row = page.changed_row(provider.id)
    assert f'data-workspaces="{1 if change == "create" else 0}"' in row


def test_a_provider_page_sees_a_check_too(admin, actions, client, make_provider):
    provider = make_provider("east", status="ready")
    page = OpenPage(client, actions, f"/manage/providers/{provider.id}")
    result = CheckResult(ok=False, category="unreachable", message="Cannot reach the cluster.")
    save_results([Outcome(provider.id, result, "manual", True, generation=provider.check_generation)])
    answer = page.poll()
    assert f'id="provider-status-{provider.id}"' in answer and "Cannot reach the cluster." in answer


# The triggers themselves, column by column -----------------------------------------------

SHOWN = {"name": "renamed", "namespace": "other", "cluster_address": "https://other.invalid",
         "status": "error", "status_category": "unreachable", "status_message": "Down.",
         "status_warnings": ["Careful."], "cordoned": True, "cordon_reason": "Why",
         "kube_version": "v1.31.0", "last_checked_at": utcnow()}
NOT_SHOWN = {"storage_class": "gold", "service_account": "coder", "consecutive_failures": 3,
             "next_check_at": utcnow(), "access_url": "https://coder.invalid"}


@pytest.mark.parametrize("column", sorted(SHOWN))
def test_a_core_update_of_a_shown_column_bumps_the_version(app, make_provider, column):
    provider = make_provider("east", last_checked_at=None)
    before = provider.display_version
    db.session.execute(sa.update(Provider).values({column: SHOWN[column]}))
    db.session.commit()
    assert _version(provider.id) == before + 1


@pytest.mark.parametrize("column", sorted(NOT_SHOWN))
def test_a_column_no_row_shows_leaves_the_version(app, make_provider, column):
    provider = make_provider("east")
    before = provider.display_version
    db.session.execute(sa.update(Provider).values({column: NOT_SHOWN[column]}))
    db.session.commit()
    assert _version(provider.id) == before


def test_the_same_values_written_again_leave_the_version(app, make_provider):
    provider = make_provider("east", status="ready", status_warnings=["Careful."])
    before = provider.display_version
    db.session.execute(sa.update(Provider).values(status="ready", status_warnings=["Careful."],
                                                  name="east"))
    db.session.commit()
    assert _version(provider.id) == before


def test_a_version_written_with_the_change_is_kept(app, make_provider):
    provider = make_provider("east")
    db.session.execute(sa.update(Provider).values(status="error", display_version=41))
    db.session.commit()
    assert _version(provider.id) == 41


def test_a_rename_bumps_only_the_organizations_providers(app, make_provider, make_org):
    acme, beta = make_org("Acme"), make_org("Beta")
    east, west = make_provider("east", organizations=[acme]), make_provider("west", organizations=[beta])
    before = {p.id: p.display_version for p in (east, west)}
    db.session.execute(sa.update(Organization).where(Organization.id == acme.id).values(name="Acme Corp"))
    db.session.commit()
    assert _version(east.id) == before[east.id] + 1 and _version(west.id) == before[west.id]


def test_the_kept_list_shows_a_rename_by_another_process_at_once(admin, client, make_provider, make_org):
    acme = make_org("Acme")
    make_provider("east", organizations=[acme])
    assert "Acme" in client.get(LIST).text
    other = sa.create_engine(db.engine.url)  # no commit of it is seen by this process
    with other.begin() as conn:
        conn.execute(sa.text("UPDATE organizations SET name = 'Acme Corp'"))
    other.dispose()
    assert "Acme Corp" in client.get(LIST).text


def test_no_write_path_bumps_the_version_by_hand():
    """The triggers are the one place: a bump written in the app would be a second one."""
    import pathlib

    root = pathlib.Path(__file__).resolve().parent.parent / "provider_admin"
    writers = [str(path.relative_to(root)) for path in root.rglob("*.py")
               if re.search(r"display_version\s*(\+=|=[^=])|\"display_version\":", path.read_text())]
    assert writers == [], json.dumps(writers)
