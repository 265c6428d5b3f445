"""Requests that race: each thread has its own client, app context and database session, and
a barrier holds each one at the write until all have passed their form's checks."""
import re
import sqlite3
import threading
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from provider_admin.extensions import db
from provider_admin.models import Organization, Provider, Role, User, Workspace
from tests.conftest import PASSWORD, TEST_DATABASE_URL, Actions, field_error
from tests.test_providers import form as provider_form
from tests.test_workspaces import wait_until, workspace_form

BARRIER_TIMEOUT = 2.0  # a thread that waits on a lock the other one holds lets it go on


@contextmanager
def overlapping(app, statement: str, parties: int = 2):
    """Hold each request thread before its first statement that matches `statement` (a regular
    expression, at the start, upper case) until all of them reach it."""
    barrier, main = threading.Barrier(parties, timeout=BARRIER_TIMEOUT), threading.get_ident()
    waited: set[int] = set()

    def hold(conn, cursor, text, *args):
        me = threading.get_ident()
        if me != main and me not in waited and re.match(statement, text.lstrip().upper(), re.S):
            waited.add(me)
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                pass

    sa.event.listen(db.engine, "before_cursor_execute", hold)
    try:
        yield
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", hold)


def at_once(*requests):
    """Run each callable in its own thread at the same moment; their responses, in order."""
    results, start = [None] * len(requests), threading.Barrier(len(requests))

    def run(index, request):
        start.wait()
        results[index] = request()

    threads = [threading.Thread(target=run, args=(i, r)) for i, r in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def signed_in(app, user: User) -> Actions:
    """Another browser of an existing user."""
    other = Actions(app.test_client(), app)
    response = other.client.post("/login", data={"email": user.email, "password": PASSWORD,
                                                  "csrf_token": other.form_token("/login")})
    assert response.status_code == 303
    return other


def statuses(responses) -> list[int]:
    return sorted(r.status_code for r in responses)


def count(model, **where) -> int:
    db.session.expire_all()
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).filter_by(**where))


@pytest.fixture
def admin(actions):
    return actions.login("admin")


def test_two_creates_of_one_organization_name(app, actions, admin):
    browsers = [actions, signed_in(app, admin)]
    tokens = [b.token() for b in browsers]

    with overlapping(app, "INSERT INTO ORGANIZATIONS"):
        responses = at_once(*[lambda b=b, t=t: b.client.post("/manage/organizations/", data={
            "name": "Acme", "csrf_token": t}) for b, t in zip(browsers, tokens)])

    assert statuses(responses) == [303, 422]
    refused = next(r for r in responses if r.status_code == 422)
    assert field_error(refused.text, "name") == 'An organization named "Acme" already exists.'
    assert count(Organization) == 1


@pytest.mark.parametrize("field", ["email", "username"])
def test_two_creates_of_one_user(app, actions, admin, field):
    browsers = [actions, signed_in(app, admin)]
    tokens = [b.token() for b in browsers]
    forms = [{"email": f"ada{i}@example.com", "username": f"ada{i}", "password": PASSWORD, "role": "member",
              "csrf_token": t, field: "ada@example.com" if field == "email" else "ada"}
             for i, t in enumerate(tokens)]

    with overlapping(app, "INSERT INTO USERS"):
        responses = at_once(*[lambda b=b, f=f: b.client.post("/manage/users/new", data=f)
                              for b, f in zip(browsers, forms)])

    assert statuses(responses) == [303, 422]
    refused = next(r for r in responses if r.status_code == 422)
    assert field_error(refused.text, field) == f"Another user has this {field}."
    assert count(User) == 2


def test_two_creates_of_one_provider_name(app, actions, admin):
    browsers = [actions, signed_in(app, admin)]
    tokens = [b.token() for b in browsers]

    with overlapping(app, "INSERT INTO PROVIDERS"):
        responses = at_once(*[lambda b=b, t=t: b.client.post("/manage/providers/new", data={
            **provider_form(cluster_address="https://k8s.invalid:6443"), "csrf_token": t})
            for b, t in zip(browsers, tokens)])

    assert statuses(responses) == [303, 422]
    refused = next(r for r in responses if r.status_code == 422)
    assert field_error(refused.text, "name") == 'A provider named "east" already exists.'
    assert count(Provider) == 1


def test_two_creates_of_one_workspace_name(app, actions, make_org, kube_api, kube_provider):
    org = make_org("Acme")
    kube_api.deploy_marker("east")
    provider = kube_provider(kube_api, organizations=[org], status="ready")
    member = actions.login("member", organizations=[org])
    browsers = [actions, signed_in(app, member)]
    forms = [{**workspace_form(provider, org), "csrf_token": b.token()} for b in browsers]

    with overlapping(app, "INSERT INTO WORKSPACES"):
        responses = at_once(*[lambda b=b, f=f: b.client.post("/workspaces/new", data=f)
                              for b, f in zip(browsers, forms)])

    assert statuses(responses) == [303, 422]
    refused = next(r for r in responses if r.status_code == 422)
    assert field_error(refused.text, "name") == "You already have a workspace with this name."
    assert count(Workspace) == 1
    wait_until(lambda: db.session.scalar(sa.select(Workspace.status)) != "building")


@pytest.mark.parametrize("change", [{"role": Role.MEMBER.value}, {"active": ""}], ids=["demote", "deactivate"])
def test_two_admins_removing_each_other_leave_one(app, actions, change):
    first = actions.login("admin", username="ada")
    second_user = actions.user("admin", username="bea")
    second = signed_in(app, second_user)
    browsers, targets = [actions, second], [second_user, first]
    tokens = [b.token() for b in browsers]
    forms = [{"email": t.email, "username": t.username, "role": Role.ADMIN.value, "active": "y",
              "csrf_token": token, **change} for t, token in zip(targets, tokens)]
    forms = [{k: v for k, v in f.items() if v != ""} for f in forms]

    # Held where each counts the admins left: without a lock both would count the other.
    with overlapping(app, r"SELECT COUNT\(\*\).*FROM USERS"):
        responses = at_once(*[lambda b=b, t=t, f=f: b.client.post(f"/manage/users/{t.id}/edit", data=f)
                              for b, t, f in zip(browsers, targets, forms)])

    assert statuses(responses) == [303, 422]
    refused = next(r for r in responses if r.status_code == 422)
    field = "role" if "role" in change else "active"
    assert field_error(refused.text, field) == "The site needs an active Site admin: make someone else one first."
    assert count(User, role=Role.ADMIN.value, active=True) == 1


@pytest.mark.skipif(bool(TEST_DATABASE_URL), reason="SQLite's database lock")
@pytest.mark.parametrize("app_config", [{"SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": {"timeout": 0.2}}}])
def test_a_database_locked_past_the_busy_timeout_is_a_503_not_a_500(app, actions, admin, database_url):
    token = actions.token()
    holder = sqlite3.connect(database_url.removeprefix("sqlite:///"))
    holder.execute("BEGIN IMMEDIATE")  # another process writing for longer than the timeout
    try:
        response = actions.client.post("/manage/organizations/", data={"name": "Acme", "csrf_token": token})
    finally:
        holder.rollback()
        holder.close()
    assert response.status_code == 503 and "The database was busy with another change. Try again." in response.text
    assert response.headers["Retry-After"] == "1"
    assert count(Organization) == 0
