"""The API's kept JSON of providers (api/provider_json.py) and its one-statement token check
(tokens.service.authenticate) never answer with stale data or with another caller's: whatever
changes, by whom and in which process, the next API request shows it.

"Another process" is a second SQLAlchemy engine on the same database: the app's commit hooks
never hear of what it writes, as they would not of another gunicorn worker, the scheduler or
SQL typed by hand."""
import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from provider_admin.api.ratelimit import LocalWindows
from provider_admin.api.provider_schemas import ProviderFilter
from provider_admin.extensions import db
from provider_admin.models import Organization, Provider, Role, Workspace, utcnow
from provider_admin.models.base import organization_members, provider_organizations
from provider_admin.tokens import service as tokens
from provider_admin.tokens.models import ApiToken

from .conftest import _driver
from .test_providers import edit_form
from .tests_api import call


class Elsewhere:
    """Another process's connection to the database: each write is committed at once."""

    def __init__(self, url: str):
        self.engine = sa.create_engine(url)

    def __call__(self, statement, **params) -> None:
        with self.engine.begin() as conn:
            conn.execute(statement, params)

    def add(self, thing) -> None:
        with Session(self.engine) as session:
            session.add(thing)
            session.commit()


@pytest.fixture
def elsewhere(database_url):
    other = Elsewhere(_driver(database_url))
    yield other
    other.engine.dispose()


@pytest.fixture
def manager(actions):
    return actions.user(Role.MANAGER.value, username="ops")


@pytest.fixture
def reader(app, manager):
    """A manager's token, and a read of one provider and of the list's items by id, each made
    twice so that the second is served from what the first kept."""
    _, secret = tokens.create(manager, "script", 30, read_only=True)
    client = app.test_client()

    def read(provider_id: int) -> tuple[dict, dict, str]:
        for _ in range(2):
            one = call(client, "GET", f"/providers/{provider_id}", secret)
            listed = call(client, "GET", "/providers?limit=100", secret)
        assert one.status_code == 200 and listed.status_code == 200
        item = next(p for p in listed.json["items"] if p["id"] == provider_id)
        return one.json, item, one.headers["ETag"]

    return read


def _stored_representation(provider_id: int) -> dict:
    """What the API would answer without any kept JSON: built from the ORM object now."""
    db.session.expire_all()
    provider = db.session.get(Provider, provider_id)
    count = db.session.scalar(sa.select(sa.func.count()).select_from(Workspace).filter_by(provider_id=provider_id))
    from provider_admin.api import provider_json

    values = {column.name: getattr(provider, column.key) for column in Provider.__table__.columns}
    organizations = [{"id": o.id, "name": o.name} for o in sorted(provider.organizations, key=lambda o: o.name)]
    return json.loads(json.dumps(provider_json._representation(values, count, organizations)))


# Every column the API shows, each with a new value, written behind the app's back. The ones
# marked "no trigger" do not bump display_version (migration 0010): a cache keyed by the
# versions alone would serve them stale.
NOW = utcnow().replace(microsecond=0)
CHANGES = {
    "name": "renamed", "uid": "00000000-0000-4000-8000-000000000001",
    "cluster_address": "https://other.invalid:6443", "namespace": "other",
    "ca_cert": "-----BEGIN CERTIFICATE-----\nnew\n-----END CERTIFICATE-----",  # no trigger
    "kubeconfig_context": "ctx", "credentials_kind": "client_cert",  # no trigger
    "token_expires_at": NOW + timedelta(days=3), "is_builtin": True, "e2e_encryption": True,  # no trigger
    "external_ssh": True, "access_url": "https://coder.invalid", "storage_class": "gold",  # no trigger
    "service_account": "coder", "pod_tolerations": [{"key": "k", "operator": "Exists"}],  # no trigger
    "pod_node_selector": {"disk": "ssd"}, "service_account_annotations": {"a": "b"},  # no trigger
    "affinity": {}, "cordoned": True, "cordon_reason": "maintenance", "status": "error",
    "status_category": "unreachable", "status_message": "Down.", "status_warnings": ["Careful."],
    "kube_version": "v1.31.0", "last_ready_at": NOW - timedelta(minutes=5),  # no trigger
    "created_at": NOW - timedelta(days=9), "updated_at": NOW - timedelta(seconds=5),  # no trigger
    "last_checked_at": None,  # set below: a check within 120 s, which does not bump the version
}


@pytest.mark.parametrize("column", sorted(CHANGES))
def test_a_column_changed_by_another_process_shows_at_once(app, make_provider, reader, elsewhere, column):
    provider = make_provider("east", last_checked_at=NOW - timedelta(seconds=30))
    before, _, etag = reader(provider.id)
    value = NOW - timedelta(seconds=20) if column == "last_checked_at" else CHANGES[column]
    elsewhere(sa.update(Provider.__table__).where(Provider.id == provider.id).values({column: value}))
    one, item, new_etag = reader(provider.id)
    assert one == item == _stored_representation(provider.id) != before
    assert new_etag == etag  # the settings' version is the ORM's: a write by hand leaves it


def test_sql_typed_by_hand_shows_at_once(app, make_provider, reader, elsewhere):
    provider = make_provider("east")
    reader(provider.id)
    elsewhere(sa.text("UPDATE providers SET storage_class = 'by-hand' WHERE id = :id"), id=provider.id)
    one, item, _ = reader(provider.id)
    assert one["storage_class"] == item["storage_class"] == "by-hand"


def test_organizations_joined_left_and_renamed_elsewhere_show_at_once(app, make_provider, make_org, reader,
                                                                      elsewhere):
    acme, globex = make_org("Acme"), make_org("Globex")
    provider = make_provider("east", organizations=[acme])
    assert [o["name"] for o in reader(provider.id)[0]["organizations"]] == ["Acme"]
    elsewhere(sa.insert(provider_organizations).values(provider_id=provider.id, organization_id=globex.id))
    assert [o["name"] for o in reader(provider.id)[1]["organizations"]] == ["Acme", "Globex"]
    elsewhere(sa.update(Organization.__table__).where(Organization.id == globex.id).values(name="Alpha"))
    assert [o["name"] for o in reader(provider.id)[0]["organizations"]] == ["Acme", "Alpha"]
    elsewhere(sa.delete(provider_organizations).where(provider_organizations.c.organization_id == acme.id))
    one, item, _ = reader(provider.id)
    assert one["organizations"] == item["organizations"] == [{"id": globex.id, "name": "Alpha"}]


def test_a_workspace_count_changed_elsewhere_shows_at_once(app, make_provider, make_org, manager, reader,
                                                           elsewhere):
    provider, org = make_provider("east"), make_org("Acme")
    assert reader(provider.id)[0]["workspaces"] == 0
    elsewhere.add(Workspace(name="w", owner_id=manager.id, organization_id=org.id, provider_id=provider.id,
                            image="i", cpu="1", memory="1Gi", disk="1Gi", status="running"))
    one, item, _ = reader(provider.id)
    assert one["workspaces"] == item["workspaces"] == 1


def test_an_edit_on_the_page_shows_with_its_new_etag(app, actions, make_provider, make_org, reader):
    actions.login(Role.ADMIN.value, username="boss")
    acme = make_org("Acme")
    provider = make_provider("east")
    _, _, etag = reader(provider.id)
    response = actions.post(f"/manage/providers/{provider.id}/edit",
                            edit_form(provider, name="east-2", organizations=str(acme.id), token="sa-token-123"))
    assert response.status_code == 303
    one, item, new_etag = reader(provider.id)
    assert one == item and one["name"] == "east-2" and one["organizations"] == [{"id": acme.id, "name": "Acme"}]
    assert new_etag == f'"{one["version"]}"' != etag


def test_the_same_values_are_one_kept_entry_and_a_change_is_another(app, make_provider, reader, elsewhere):
    """The kept JSON is used at all (else the tests above would prove nothing about it)."""
    kept = app.extensions["caches"].api_providers
    provider = make_provider("east")
    reader(provider.id)
    assert len(kept._items) == 1
    elsewhere(sa.update(Provider.__table__).values(access_url="https://a.invalid"))
    reader(provider.id)
    assert len(kept._items) == 2


# Tokens and callers ----------------------------------------------------------------------

def test_a_token_revoked_by_another_process_is_refused_at_the_next_request(app, manager, make_provider, elsewhere):
    token, secret = tokens.create(manager, "script", 30, read_only=True)
    provider, client = make_provider("east"), app.test_client()
    assert call(client, "GET", f"/providers/{provider.id}", secret).status_code == 200
    elsewhere(sa.update(ApiToken.__table__).where(ApiToken.id == token.id).values(revoked_at=utcnow()))
    response = call(client, "GET", f"/providers/{provider.id}", secret)
    assert response.status_code == 401 and response.json["title"] == "Token revoked"


def test_a_demotion_by_another_process_refuses_the_next_request(app, manager, make_provider, elsewhere):
    _, secret = tokens.create(manager, "script", 30, read_only=True)
    provider, client = make_provider("east"), app.test_client()
    assert call(client, "GET", "/providers", secret).status_code == 200
    elsewhere(sa.text("UPDATE users SET role = 'member' WHERE id = :id"), id=manager.id)
    assert call(client, "GET", "/providers", secret).status_code == 403
    assert call(client, "GET", f"/providers/{provider.id}", secret).status_code == 403
    elsewhere(sa.text("UPDATE users SET role = 'manager', active = :off WHERE id = :id"), id=manager.id, off=False)
    assert call(client, "GET", "/providers", secret).json["title"] == "Account deactivated"


def test_a_members_organizations_changed_elsewhere_show_at_the_next_request(app, actions, make_org, elsewhere):
    acme, globex = make_org("Acme"), make_org("Globex")
    member = actions.user(Role.MEMBER.value, username="dev", organizations=[acme])
    _, secret = tokens.create(member, "laptop", 30, read_only=True)
    client = app.test_client()
    assert [o["name"] for o in call(client, "GET", "/me", secret).json["organizations"]] == ["Acme"]
    elsewhere(sa.insert(organization_members).values(user_id=member.id, organization_id=globex.id))
    elsewhere(sa.delete(organization_members).where(organization_members.c.organization_id == acme.id))
    # The test client's requests share this test's app context, so its session and what that
    # holds; in the app each request starts with a new one.
    db.session.expire_all()
    assert [o["name"] for o in call(client, "GET", "/me", secret).json["organizations"]] == ["Globex"]


def test_callers_in_turn_each_get_their_own_answer(app, actions, manager, make_provider):
    """One client, two tokens in turn: nothing of one request's caller reaches the next."""
    member = actions.user(Role.MEMBER.value, username="dev")
    _, manager_secret = tokens.create(manager, "m", 30, read_only=True)
    _, member_secret = tokens.create(member, "d", 30, read_only=True)
    provider, client = make_provider("east"), app.test_client()
    for _ in range(2):
        assert call(client, "GET", f"/providers/{provider.id}", manager_secret).json["name"] == "east"
        assert call(client, "GET", "/me", manager_secret).json["email"] == manager.email
        assert call(client, "GET", f"/providers/{provider.id}", member_secret).status_code == 403
        assert call(client, "GET", "/providers", member_secret).status_code == 403
        assert call(client, "GET", "/me", member_secret).json["email"] == member.email


def test_a_read_costs_two_statements_and_loads_no_orm_object(app, manager, make_provider):
    from .conftest import statements_of

    _, secret = tokens.create(manager, "script", 30, read_only=True)
    provider, client = make_provider("east"), app.test_client()
    path = f"/providers/{provider.id}"
    call(client, "GET", path, secret)  # first use: "last used" is written
    statements, response = statements_of(lambda: call(client, "GET", path, secret))
    assert response.status_code == 200 and len(statements) == 2, statements
    assert "api_tokens" in statements[0] and "FROM providers" in statements[1]


# The parts made cheaper -------------------------------------------------------------------

def test_the_query_schema_is_built_once_and_read_only():
    schema = ProviderFilter.model_json_schema()
    assert schema is ProviderFilter.model_json_schema()
    assert schema["properties"]["limit"]["maximum"] == 100
    with pytest.raises(TypeError):
        schema["properties"]["limit"] = {}
    # With arguments (the OpenAPI document), Pydantic's own, fresh each time.
    document = ProviderFilter.model_json_schema(ref_template="#/components/schemas/{model}")
    assert isinstance(document, dict) and document is not ProviderFilter.model_json_schema(
        ref_template="#/components/schemas/{model}")
    assert document["properties"].keys() == schema["properties"].keys()


def test_the_memory_rate_limit_slides_like_the_counter_it_replaces():
    from limits import parse

    windows = LocalWindows(parse("10/minute"))
    start = 600 * 60.0  # the start of a window
    assert [windows.hit("k", start + i) for i in range(10)] == [None] * 10
    assert windows.hit("k", start + 30) == pytest.approx(30)  # this window is full: its end
    assert windows.hit("other", start + 30) is None  # counted per key
    # A quarter into the next window, the previous ten still weigh 7.5: three more fit, and
    # the fourth fits once their weight is under 7, 3 s later.
    hits = [windows.hit("k", start + 75) for _ in range(4)]
    assert hits[:3] == [None] * 3 and hits[3] == pytest.approx(3, abs=1e-3)
    assert windows.hit("k", start + 77.9) is not None and windows.hit("k", start + 78.01) is None
    assert windows.hit("k", start + 180) is None  # two windows on, nothing weighs
