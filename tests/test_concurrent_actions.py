"""Two people acting on one provider at the same moment (SPEC §11, faults): cordon, uncordon,
edit, delete, check, deploy and a change of its organizations, on the pages (plain and HTMX)
and through the API. Every pair starts together at a barrier, many times over, each request
from its own client, thread, app context and database session; then the same through
gunicorn's worker processes. A check takes a moment (the emulator answers slowly), so that a
delete lands during it.

No answer is ever a 5xx: each is a success, a conflict (409; 412 for an API change whose
If-Match went stale) or a 404 saying that the provider was deleted. What the database holds
afterwards, and the audit log, are those of one of the serial orders of the successes.

The same for what else two people change at once: an organization's members, an
organization or user changed with one ETag, a token revoked twice, a workspace created on a
provider being deleted; and a transaction PostgreSQL aborts in a deadlock.

PROVIDER_ADMIN_RACE_REPEATS=30 runs every race longer."""
import itertools
import json
import os
import re
import threading
import traceback
from dataclasses import dataclass, field, replace

import pytest
import requests
import sqlalchemy as sa

from provider_admin import crypto
from provider_admin.extensions import db
from provider_admin.models import AuditEvent, Organization, Provider, Role, User, Workspace
from provider_admin.providers import service
from provider_admin.tokens import service as tokens
from provider_admin.config import normalize_database_url
from tests.conftest import PASSWORD, TEST_DATABASE_URL, Actions
from tests import servers
from tests.kube import provider_uid
from tests.test_workspaces import wait_until

# Per pair; each repeat rotates through the ways in (page, HTMX, API). More for a longer hunt.
REPEATS = int(os.environ.get("PROVIDER_ADMIN_RACE_REPEATS", "6"))
CHANNELS = ("page", "htmx", "api")
GONE = "The provider was deleted."
CONFLICT = "at the same moment, so this change was not made"
EDIT_CONFLICT = "Someone else saved this provider"


@dataclass(frozen=True)
class State:
    """What the test compares: a provider as the database holds it, and its audit entries."""

    exists: bool = True
    cordoned: bool = True
    reason: str | None = "maintenance"
    storage_class: str | None = None
    organizations: frozenset = frozenset({"Acme"})
    audit: tuple = ()  # the actions audited, sorted
    changed: bool = False  # its version moved on from the one both forms were opened at


def _audited(state: State, action: str, **values) -> State:
    return replace(state, audit=tuple(sorted(state.audit + (action,))), **values)


# What each action does when it runs alone on a provider in `state`: the new state, or None
# when it cannot succeed there (the provider is gone; an edit opened before another change).
def _cordon(state, who):
    return _audited(state, "provider.cordon", cordoned=True, reason=f"by {who}", changed=True)


def _uncordon(state, who):
    if not state.cordoned:
        return state  # nothing to do: still a success
    return _audited(state, "provider.uncordon", cordoned=False, reason=None, changed=True)


def _edit(state, who):
    if state.changed:
        return None
    return _audited(state, "provider.update", storage_class=f"class-{who}", changed=True)


def _organizations(state, who):
    if state.changed:
        return None
    return _audited(state, "provider.update", organizations=frozenset({"Acme", f"Org-{who}"}), changed=True)


def _delete(state, who):
    return _audited(state, "provider.delete", exists=False, cordoned=False, reason=None, storage_class=None,
                    organizations=frozenset())


def _check(state, who):
    return state


def _deploy(state, who):
    return _audited(state, "provider.deploy")


EFFECTS = {"cordon": _cordon, "uncordon": _uncordon, "edit": _edit, "organizations": _organizations,
           "delete": _delete, "check": _check, "deploy": _deploy}

PAIRS = [("cordon", "cordon"), ("cordon", "uncordon"), ("uncordon", "uncordon"), ("edit", "edit"),
         ("edit", "delete"), ("delete", "delete"), ("cordon", "delete"), ("uncordon", "delete"),
         ("check", "delete"), ("check", "edit"), ("check", "check"), ("deploy", "delete"),
         ("deploy", "cordon"), ("organizations", "organizations"), ("organizations", "delete"),
         ("organizations", "edit"), ("cordon", "edit"), ("uncordon", "edit")]


def serial_outcomes(pair: tuple[str, str]) -> set[tuple[State, tuple[bool, ...]]]:
    """Every final state two actions can leave, each taking effect or not, in either order,
    with which of them took effect."""
    found = set()
    for order in itertools.permutations(range(len(pair))):
        for effective in itertools.product((True, False), repeat=len(pair)):
            state = State()
            for index in order:
                if effective[index]:
                    state = EFFECTS[pair[index]](state, index) if state and state.exists else None
            if state is not None:
                found.add((replace(state, changed=False), effective))
    return found


def consistent(final: State, kinds: list[str], outcomes) -> bool:
    """Whether some serial order gives `final`: each success took effect, each conflict did
    not; an action told that the provider was deleted may have taken effect just before."""
    return any(state == final and all(took if kind == "success" else kind == "gone" or not took
                                      for took, kind in zip(effective, kinds))
               for state, effective in outcomes)


@dataclass
class Person:
    """Someone with a browser (CSRF token at hand) and an API token."""

    client: object
    csrf: str
    api_client: object
    secret: str
    name: str = field(default="")


def person(app, actions, index: int) -> Person:
    user = actions.user(Role.ADMIN.value if index else Role.MANAGER.value, username=f"person{index}")
    browser = Actions(app.test_client(), app)
    response = browser.client.post("/login", data={"email": user.email, "password": PASSWORD,
                                                    "csrf_token": browser.form_token("/login")})
    assert response.status_code == 303
    _, secret = tokens.create(user, "script", 30, read_only=False)
    return Person(browser.client, browser.token(), app.test_client(), secret, user.username)


class Opened:
    """A provider as both people read it before acting: its id, version and edit form."""

    def __init__(self, provider: Provider, organizations: dict[str, int]):
        self.id, self.version, self.organizations = provider.id, provider.version, organizations
        data = service.form_data(provider)
        self.form = {key: value for key, value in data.items() if key not in ("organizations", "version")
                     and value not in (None, False)}
        self.form.update(version=str(provider.version), token="", organizations=[organizations["Acme"]])
        for key in ("e2e_encryption", "external_ssh"):
            if data[key]:
                self.form[key] = "y"


def request(action: str, channel: str, who: Person, index: int, opened: Opened):
    """One action by `who` through `channel`; returns the response."""
    url, api = f"/manage/providers/{opened.id}", f"/api/v1/providers/{opened.id}"
    if channel == "api":
        headers = {"Authorization": f"Bearer {who.secret}", "If-Match": f'"{opened.version}"'}
        body = {"cordon": ("POST", "/cordon", {"reason": f"by {index}"}),
                "uncordon": ("POST", "/uncordon", None), "check": ("POST", "/check", None),
                "deploy": ("POST", "/deploy", None), "delete": ("DELETE", "", None),
                "edit": ("PATCH", "", {"storage_class": f"class-{index}"}),
                "organizations": ("PATCH", "", {"organizations": ["Acme", f"Org-{index}"]})}[action]
        method, path, payload = body
        if action != "delete" and method != "PATCH":
            headers.pop("If-Match")
        return who.api_client.open(api + path, method=method, headers=headers, json=payload)
    headers = {"HX-Request": "true", "X-CSRFToken": who.csrf} if channel == "htmx" else {}
    data = {} if channel == "htmx" else {"csrf_token": who.csrf}
    if action == "cordon":
        data["reason"] = f"by {index}"
    elif action == "edit":
        data.update(opened.form, storage_class=f"class-{index}")
    elif action == "organizations":
        data.update(opened.form, organizations=[opened.organizations["Acme"], opened.organizations[f"Org-{index}"]])
    path = {"edit": "/edit", "organizations": "/edit"}.get(action, "/" + action)
    return who.client.post(url + path, data=data, headers=headers)


def kind_of(response, action: str, channel: str) -> str:
    """success, conflict or gone; anything else fails the test with the answer."""
    status, text = response.status_code, response.get_data(as_text=True)
    success = {"page": {303}, "htmx": {200}, "api": {200, 204}}[channel]
    if status in success:
        return "success"
    if channel == "htmx" and status in (404, 409) and EDIT_CONFLICT not in text:
        assert response.headers.get("HX-Retarget") == "#flashes", "HTMX shows the message in the flash area"
    if status == 404 and GONE in text:
        return "gone"
    if status == 409 and (CONFLICT in text or action in ("edit", "organizations") and EDIT_CONFLICT in text):
        return "conflict"
    if status == 412 and channel == "api" and action in ("edit", "organizations", "delete"):
        return "conflict"  # the If-Match of a change went stale
    errors = re.findall(r'<div class="error" id="([\w-]+)">(.*?)</div>', text, re.S)
    raise AssertionError(f"{action} through {channel} answered {status}: {errors or text[:500]}")


def stored(provider_id: int) -> State:
    """The provider as the database holds it now, with its audit entries."""
    db.session.expire_all()
    audit = tuple(sorted(db.session.scalars(sa.select(AuditEvent.action).filter(
        AuditEvent.target_type == "provider", AuditEvent.target_id == provider_id))))
    provider = db.session.get(Provider, provider_id)
    if provider is None:
        return State(exists=False, cordoned=False, reason=None, organizations=frozenset(), audit=audit)
    return State(cordoned=provider.cordoned, reason=provider.cordon_reason, storage_class=provider.storage_class,
                 organizations=frozenset(o.name for o in provider.organizations), audit=audit)


def at_once(*calls):
    """Run each callable in its own thread, released together; their results, in order."""
    results, start = [None] * len(calls), threading.Barrier(len(calls))

    def run(index, call):
        start.wait()
        try:
            results[index] = call()
        except BaseException as error:  # noqa: BLE001 - reported by the test
            traceback.print_exc()  # where it was raised, in the captured output
            results[index] = error

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


@pytest.fixture
def world(app, actions, make_org, kube_api_tls):
    """Two people, the organizations they may allow, and a way to register a fresh provider."""
    organizations = {name: make_org(name).id for name in ("Acme", "Org-0", "Org-1")}
    people = [person(app, actions, 0), person(app, actions, 1)]
    kube_api = kube_api_tls
    kube_api.deploy_marker("east")
    kube_api.slow("get /version", 0.05)  # a check takes a moment: a delete lands during it

    def fresh() -> Opened:
        for provider in db.session.scalars(sa.select(Provider)):  # the previous repeat's
            db.session.delete(provider)
        db.session.execute(sa.delete(AuditEvent))  # ids come again on SQLite
        db.session.commit()
        conn = kube_api.connection(namespace="ws")
        provider = Provider(name="east", uid=provider_uid("east"), cluster_address=conn.server, namespace="ws",
                            ca_cert=conn.ca_cert, credentials_encrypted=crypto.encrypt(json.dumps({"token": "t"})),
                            credentials_kind="token", cordoned=True, cordon_reason="maintenance",
                            organizations=[db.session.get(Organization, organizations["Acme"])])
        db.session.add(provider)
        db.session.commit()
        return Opened(provider, organizations)

    return people, fresh


@pytest.mark.parametrize("pair", PAIRS, ids=["-".join(p) for p in PAIRS])
def test_two_actions_at_once_never_answer_5xx_and_leave_a_serial_state(world, pair):
    people, fresh = world
    outcomes = serial_outcomes(pair)
    for repeat in range(REPEATS):
        opened = fresh()
        channels = [CHANNELS[(repeat + i) % 3] for i in range(2)]
        responses = at_once(*[lambda i=i: request(pair[i], channels[i], people[i], i, opened) for i in range(2)])
        for response in responses:
            assert not isinstance(response, BaseException), repr(response)
        kinds = [kind_of(r, a, c) for r, a, c in zip(responses, pair, channels)]
        final = stored(opened.id)
        assert consistent(final, kinds, outcomes), (
            f"repeat {repeat}: {list(zip(pair, channels, kinds))} left {final}, which no serial order gives")
        if "gone" in kinds:
            assert not final.exists


# Organizations: members added and removed by two people at once -----------------------------

MEMBERSHIP = {"add": lambda member: (True, () if member else ("organization.add_member",)),
              "remove": lambda member: (False, ("organization.remove_member",) if member else ())}


def membership_request(action: str, channel: str, who: Person, organization_id: int, user_id: int):
    if channel == "api":
        headers = {"Authorization": f"Bearer {who.secret}"}
        url = f"/api/v1/organizations/{organization_id}/members"
        if action == "add":
            return who.api_client.post(url, headers=headers, json={"user_id": user_id})
        return who.api_client.delete(f"{url}/{user_id}", headers=headers)
    headers = {"HX-Request": "true", "X-CSRFToken": who.csrf} if channel == "htmx" else {}
    data = {} if channel == "htmx" else {"csrf_token": who.csrf}
    url = f"/manage/organizations/{organization_id}/members"
    if action == "add":
        return who.client.post(url, data={**data, "user_id": user_id}, headers=headers)
    return who.client.post(f"{url}/{user_id}/remove", data=data, headers=headers)


def membership_answer(response, action: str, channel: str) -> str:
    """changed (may have), or refused: what a second, serial request would also be told."""
    status = response.status_code
    if status in {"page": (303,), "htmx": (200,), "api": (200,)}[channel]:
        return "changed"
    if (channel, action, status) in (("api", "remove", 404), ("page", "add", 422), ("htmx", "add", 422)):
        return "refused"  # not a member (any more), or one already: nothing to do
    if status == 409 and CONFLICT in response.get_data(as_text=True):
        return "refused"
    raise AssertionError(f"{action} through {channel} answered {status}: {response.get_data(as_text=True)[:500]}")


@pytest.mark.parametrize("pair", [("add", "add"), ("remove", "remove"), ("add", "remove")], ids="-".join)
def test_two_membership_changes_at_once_never_answer_5xx_and_are_audited_once(app, actions, world, pair):
    people, _ = world
    organization = db.session.scalar(sa.select(Organization).filter_by(name="Org-0"))
    member = actions.user(Role.MEMBER.value, username="dev")
    for repeat in range(REPEATS):
        start = pair[0] == "remove"
        organization.members = [member] if start else []
        db.session.execute(sa.delete(AuditEvent))
        db.session.commit()
        channels = [CHANNELS[(repeat + i) % 3] for i in range(2)]
        ids = (organization.id, member.id)
        responses = at_once(*[lambda i=i: membership_request(pair[i], channels[i], people[i], *ids)
                              for i in range(2)])
        for response in responses:
            assert not isinstance(response, BaseException), repr(response)
        answers = [membership_answer(r, a, c) for r, a, c in zip(responses, pair, channels)]
        db.session.expire_all()
        final = (member in organization.members, tuple(sorted(db.session.scalars(
            sa.select(AuditEvent.action).filter_by(target_type="organization")))))
        possible = set()
        for order in itertools.permutations(range(2)):
            for applied in itertools.product((True, False), repeat=2):
                if any(not took and answers[i] == "changed" and pair[i] != "add" for i, took in enumerate(applied)):
                    continue
                state, audit = start, ()
                for index in order:
                    if applied[index]:
                        state, entries = MEMBERSHIP[pair[index]](state)
                        audit += entries
                possible.add((state, tuple(sorted(audit))))
        assert final in possible, f"repeat {repeat}: {list(zip(pair, channels, answers))} left {final}"
        assert final[1].count("organization.add_member") <= 1 and final[1].count("organization.remove_member") <= 1


@pytest.mark.skipif(not TEST_DATABASE_URL, reason="PostgreSQL's deadlock detection")
def test_a_transaction_postgresql_aborts_in_a_deadlock_is_a_409(app, world):
    """A rename holds its organization and waits for a provider of it (the trigger that bumps
    the providers' display version), while another transaction holds that provider and waits
    for the organization: PostgreSQL aborts the one that waited first, the rename."""
    people, fresh = world
    opened = fresh()  # a provider allowing Acme
    acme = db.session.scalar(sa.select(Organization.id).filter_by(name="Acme"))
    other = sa.create_engine(normalize_database_url(TEST_DATABASE_URL))
    try:
        with other.connect() as holder, other.connect() as watcher:
            holder.execute(sa.text("SET deadlock_timeout = '20s'"))  # the rename detects it first
            holder.execute(sa.text("SELECT id FROM providers WHERE id = :id FOR UPDATE"), {"id": opened.id})
            url, form = f"/manage/organizations/{acme}", {"name": "Acme Corp", "csrf_token": people[0].csrf}
            results = []
            rename = threading.Thread(target=lambda: results.extend(at_once(lambda: people[0].client.post(url, data=form))))
            rename.start()
            waiting = sa.text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                              "AND query LIKE 'UPDATE organizations%'")
            while not watcher.execute(waiting).scalar() and rename.is_alive():
                watcher.rollback()
                rename.join(0.05)
            holder.execute(sa.text("UPDATE organizations SET name = 'Acme' WHERE id = :id"), {"id": acme})
            rename.join(60)
            holder.rollback()
    finally:
        other.dispose()
    response = results[0]
    assert not isinstance(response, BaseException), repr(response)
    assert response.status_code == 409, response.text
    assert "The organization was changed by someone else at the same moment" in response.text
    db.session.expire_all()
    assert db.session.get(Organization, acme).name == "Acme"
    assert not db.session.scalars(sa.select(AuditEvent).filter_by(action="organization.update")).all()


# The same races through gunicorn: several worker processes, each its own connection pool -----

class Answer:
    """A requests response read like the test client's."""

    def __init__(self, response):
        self.status_code, self.text, self.headers = response.status_code, response.text, response.headers

    def get_data(self, as_text=False):
        return self.text


class Remote:
    """A browser or a script talking HTTP to the site at `base`."""

    def __init__(self, base: str):
        self.base, self.http = base, requests.Session()

    def open(self, path, method="GET", headers=None, json=None, data=None):
        return Answer(self.http.request(method, self.base + path, headers=headers, json=json, data=data,
                                        allow_redirects=False, timeout=120))

    def post(self, path, **kwargs):
        return self.open(path, "POST", **kwargs)

    def delete(self, path, **kwargs):
        return self.open(path, "DELETE", **kwargs)


def remote_person(base: str, local: Person, email: str) -> Person:
    browser = Remote(base)
    page = browser.http.get(base + "/login", timeout=60).text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    signed_in = browser.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
    assert signed_in.status_code == 303
    csrf = re.search(r'"X-CSRFToken": "([^"]+)"', browser.http.get(base + "/workspaces/", timeout=60).text).group(1)
    return Person(browser, csrf, Remote(base), local.secret, local.name)


def test_races_through_gunicorn_workers_never_answer_5xx(world, database_url, tmp_path):
    people, fresh = world
    env = servers.environment(database_url, tmp_path / "instance", CHECK_TIMEOUT=5)
    log = tmp_path / "access.log"
    with servers.gunicorn(env, log, workers=3) as base:
        remote = [remote_person(base, p, f"{p.name}@example.com") for p in people]
        for repeat in range(max(1, REPEATS // 3)):
            for pair in PAIRS:
                opened = fresh()
                channels = [CHANNELS[(repeat + i + len(pair[0])) % 3] for i in range(2)]
                responses = at_once(*[lambda i=i: request(pair[i], channels[i], remote[i], i, opened)
                                      for i in range(2)])
                for response in responses:
                    assert not isinstance(response, BaseException), repr(response)
                kinds = [kind_of(r, a, c) for r, a, c in zip(responses, pair, channels)]
                final = stored(opened.id)
                assert consistent(final, kinds, serial_outcomes(pair)), (
                    f"{pair} through {channels}: {kinds} left {final}, which no serial order gives")
    answered = [line.split() for line in log.read_text().splitlines()]
    assert answered and not [line for line in answered if line[1].startswith("5")]


def test_two_renames_with_one_etag_at_once_are_one_rename_and_one_412(world):
    """If-Match holds under concurrency: the second rename waits for the first, then finds the
    organization changed since the read its ETag came from."""
    people, _ = world
    acme = db.session.scalar(sa.select(Organization.id).filter_by(name="Acme"))
    url = f"/api/v1/organizations/{acme}"
    for repeat in range(REPEATS):
        tag = people[0].api_client.get(url, headers={"Authorization": f"Bearer {people[0].secret}"}).headers["ETag"]
        responses = at_once(*[lambda i=i: people[i].api_client.patch(url, json={"name": f"Acme {repeat}-{i}"}, headers={
            "Authorization": f"Bearer {people[i].secret}", "If-Match": tag}) for i in range(2)])
        assert sorted(r.status_code for r in responses) == [200, 412], [r.get_data(as_text=True) for r in responses]
        renamed = next(r for r in responses if r.status_code == 200).json["name"]
        db.session.expire_all()
        assert db.session.get(Organization, acme).name == renamed
        assert len(db.session.scalars(sa.select(AuditEvent).filter_by(action="organization.update")).all()) == repeat + 1


def test_two_changes_of_one_user_with_one_etag_at_once_are_one_change_and_one_412(world, actions):
    people, _ = world
    dev = actions.user(Role.MEMBER.value, username="dev").id
    url = f"/api/v1/users/{dev}"
    admin = people[1]  # the API's users area is for site admins
    for repeat in range(REPEATS):
        tag = admin.api_client.get(url, headers={"Authorization": f"Bearer {admin.secret}"}).headers["ETag"]
        responses = at_once(*[lambda i=i: admin.api_client.patch(url, json={"username": f"dev-{repeat}-{i}"}, headers={
            "Authorization": f"Bearer {admin.secret}", "If-Match": tag}) for i in range(2)])
        assert sorted(r.status_code for r in responses) == [200, 412], [r.get_data(as_text=True) for r in responses]
        db.session.expire_all()
        assert db.session.get(User, dev).username == next(r for r in responses if r.status_code == 200).json["username"]
        assert len(db.session.scalars(sa.select(AuditEvent).filter_by(action="user.update")).all()) == repeat + 1


def test_a_token_revoked_twice_at_once_is_revoked_and_audited_once(app, world):
    people, _ = world
    admin = people[1]
    owner = db.session.scalar(sa.select(User).filter_by(username=admin.name))
    for repeat in range(REPEATS):
        token, _ = tokens.create(owner, f"doomed {repeat}", 30, read_only=False)
        url = f"/api/v1/tokens/{token.id}"
        clients = [app.test_client(), app.test_client()]
        responses = at_once(*[lambda c=c: c.delete(url, headers={"Authorization": f"Bearer {admin.secret}"})
                              for c in clients])
        assert [r.status_code for r in responses] == [204, 204]
        assert len(db.session.scalars(sa.select(AuditEvent).filter_by(
            action="api_token.revoke", target_id=token.id)).all()) == 1


def test_a_provider_that_never_was_is_not_said_to_be_deleted(world):
    people, fresh = world
    opened = fresh()
    deleted = people[1].client.post(f"/manage/providers/{opened.id}/delete", data={"csrf_token": people[1].csrf})
    assert deleted.status_code == 303
    for url in (f"/manage/providers/{opened.id}/edit", f"/manage/providers/{opened.id}"):
        response = people[1].client.get(url)
        assert response.status_code == 404 and GONE in response.text
    api = people[0].api_client.get(f"/api/v1/providers/{opened.id}/manifest",
                                   headers={"Authorization": f"Bearer {people[0].secret}"})
    assert api.status_code == 404 and api.json["detail"] == GONE
    never = people[1].client.get(f"/manage/providers/{opened.id + 1000}/edit")
    assert never.status_code == 404 and GONE not in never.text
    assert "There is nothing at this address." in never.text


def test_a_workspace_created_while_its_provider_is_deleted_is_one_or_the_other(app, world, actions, kube_api_tls):
    """Never a workspace without its provider, nor a 5xx: the delete is refused because the
    workspace came first, or the workspace because its provider went first."""
    people, _ = world
    acme = db.session.scalar(sa.select(Organization).filter_by(name="Acme"))
    member = actions.user(Role.MEMBER.value, username="dev", organizations=[acme])
    developer = Actions(app.test_client(), app)
    signed = developer.client.post("/login", data={"email": member.email, "password": PASSWORD,
                                                   "csrf_token": developer.form_token("/login")})
    assert signed.status_code == 303
    csrf, conn = developer.token(), kube_api_tls.connection(namespace="ws")
    for repeat in range(REPEATS):
        name = f"p{repeat}"
        kube_api_tls.deploy_marker(name, namespace=f"ws{repeat}")
        provider = Provider(name=name, uid=provider_uid(name), cluster_address=conn.server, namespace=f"ws{repeat}",
                            ca_cert=conn.ca_cert, credentials_encrypted=crypto.encrypt(json.dumps({"token": "t"})),
                            credentials_kind="token", status="ready", organizations=[acme])
        db.session.add(provider)
        db.session.commit()
        form = {"name": f"box{repeat}", "organization": str(acme.id), "provider": str(provider.id),
                "image": "busybox", "cpu": "1", "memory": "1Gi", "disk": "1Gi", "csrf_token": csrf}
        provider_id, url = provider.id, f"/manage/providers/{provider.id}/delete"
        created, deleted = at_once(lambda: developer.client.post("/workspaces/new", data=form),
                                   lambda: people[1].client.post(url, data={"csrf_token": people[1].csrf}))
        for response in (created, deleted):
            assert not isinstance(response, BaseException), repr(response)
            assert response.status_code in (303, 409, 422), response.get_data(as_text=True)[:500]
        db.session.expire_all()
        workspaces = db.session.scalars(sa.select(Workspace).filter_by(name=f"box{repeat}")).all()
        exists = db.session.get(Provider, provider_id) is not None
        assert (created.status_code == 303) == bool(workspaces) and (deleted.status_code == 303) == (not exists)
        assert not (workspaces and not exists)
        if created.status_code == 422:
            said = re.findall(r'<div class="error" id="provider-error">\s*<p>(.*?)</p>', created.text, re.S)
            # Deleted while it was saved, or before the form was checked (no longer offered, or
            # read on SQLite between the removal of its organizations and its own).
            assert said and ("deleted a moment ago" in said[0] or "Not a valid choice" in said[0]
                             or "cannot take new workspaces" in said[0]), said
    wait_until(lambda: "building" not in db.session.scalars(sa.select(Workspace.status)).all())
