"""The badge poll: a GET of a short fingerprint answered 204 while nothing changed; on a change
a POST of the versions shown, answered with only the changed rows out of band."""
import json
import re
import time
from datetime import timedelta
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa

from provider_admin.extensions import db
from provider_admin.models import Provider, Workspace, utcnow
from provider_admin.caches import caches
from provider_admin.providers import fingerprint, scope

from .conftest import statements_of

STATUS = "/manage/providers/status"


@pytest.fixture
def admin(actions):
    return actions.login()


def poll_of(html: str) -> tuple[str, str]:
    """(URL, fingerprint) of the page's poll, as the browser sends them."""
    url = re.search(r'<div hx-get="([^"]+)" hx-trigger="every', html).group(1).replace("&amp;", "&")
    return url, re.search(r'"fp": "([^"]+)"', html).group(1)


def known_of(html: str) -> str:
    """What knownVersions() in static/js/app.js sends for the rows of `html`."""
    rows = re.findall(r'data-provider-id="(\d+)" data-version="(\d+)" data-workspaces="(\d+)"', html)
    return ",".join(".".join(row) for row in rows)


def get_poll(client, url, fp):
    """The GET as htmx sends it: the element's URL, with fp added to its query string."""
    return client.get(f"{url}{'&' if '?' in url else '?'}{urlencode({'fp': fp})}",
                      headers={"HX-Request": "true"})


def post_poll(actions, url, fp, known):
    return actions.post(url, {"fp": fp, "known": known}, htmx=True)


def bump(provider, **fields):
    """What a check in another process writes when the row's display changes."""
    for name, value in fields.items():
        setattr(provider, name, value)
    provider.display_version += 1
    db.session.commit()


def test_unchanged_poll_is_204_with_only_the_fingerprint(admin, client, make_provider):
    make_provider("east")
    make_provider("west")
    url, fp = poll_of(client.get("/manage/providers/").text)
    assert url == STATUS
    response = get_poll(client, url, fp)
    assert response.status_code == 204 and response.data == b""


def test_a_change_asks_for_the_versions_then_sends_only_the_changed_rows(admin, actions, client,
                                                                        make_provider):
    east, west = make_provider("east"), make_provider("west")
    page = client.get("/manage/providers/").text
    url, fp = poll_of(page)
    known = known_of(page)
    bump(west, status="error", status_message="Cannot connect.")

    asked = get_poll(client, url, fp)
    assert asked.status_code == 200 and asked.data == b""
    assert json.loads(asked.headers["HX-Trigger"]) == {"providerStatusStale": True}

    answer = post_poll(actions, url, fp, known)
    assert answer.status_code == 200
    assert f'id="provider-row-{west.id}"' in answer.text and f'id="provider-row-{east.id}"' not in answer.text
    assert 'hx-swap-oob="true"' in answer.text and ">Error<" in answer.text
    new_url, new_fp = poll_of(answer.text)
    assert new_url == url and new_fp != fp
    assert 'id="provider-poll" hx-swap="none" hx-swap-oob="true"' in answer.text
    # The page now shows the new row and the new fingerprint: quiet again.
    assert get_poll(client, url, new_fp).status_code == 204


def test_nothing_changed_in_the_rows_shown_answers_only_a_new_poll(admin, actions, client, make_provider):
    make_provider("east")
    page = client.get("/manage/providers/").text
    url, _ = poll_of(page)
    answer = post_poll(actions, url, "1-stale", known_of(page))
    assert answer.status_code == 200 and "provider-row-" not in answer.text
    assert get_poll(client, url, poll_of(answer.text)[1]).status_code == 204


def test_fingerprint_is_not_fooled_by_versions_trading_places(admin, client, make_provider):
    a, b = make_provider("a", display_version=2), make_provider("b", display_version=1)
    url, fp = poll_of(client.get("/manage/providers/").text)
    a.display_version, b.display_version = 1, 2  # the sums of ids and of versions stay the same
    db.session.commit()
    assert get_poll(client, url, fp).status_code == 200


def test_fingerprint_tells_a_new_provider_from_a_deleted_one_with_the_same_id(admin, client, make_provider):
    old = make_provider("east", display_version=3, created_at=utcnow() - timedelta(hours=1))
    url, fp = poll_of(client.get("/manage/providers/").text)
    ident = old.id
    db.session.delete(old)
    db.session.commit()
    make_provider("east", id=ident, display_version=3)
    assert get_poll(client, url, fp).status_code == 200


def test_fingerprint_in_sql_matches_the_page(admin, client, make_provider, make_org, actions):
    org = make_org()
    providers = [make_provider(f"p{i:02}", display_version=i * 7 + 1) for i in range(60)]
    db.session.add(Workspace(name="w", owner=admin, organization=org, provider=providers[3],
                             image="i", cpu="1", memory="1Gi", disk="1Gi", status="running"))
    db.session.commit()
    for args in ({}, {"page": 2}, {"q": "p1"}):
        page = client.get("/manage/providers/", query_string=args).text
        url, fp = poll_of(page)
        assert fp == fingerprint.status_fingerprint(scope.Scope.from_args(_args(args)))
        assert get_poll(client, url, fp).status_code == 204


def _args(values):
    from werkzeug.datastructures import MultiDict

    return MultiDict(values)


def test_a_workspace_count_change_updates_the_row(admin, actions, client, make_provider, make_org):
    provider = make_provider("east")
    page = client.get("/manage/providers/").text
    url, fp = poll_of(page)
    org = make_org()
    db.session.add(Workspace(name="w", owner=admin, organization=org, provider=provider,
                             image="i", cpu="1", memory="1Gi", disk="1Gi", status="running"))
    db.session.commit()
    assert get_poll(client, url, fp).status_code == 200
    answer = post_poll(actions, url, fp, known_of(page))
    assert f'id="provider-row-{provider.id}"' in answer.text and 'data-workspaces="1"' in answer.text


@pytest.mark.parametrize("change", ["add", "remove", "add elsewhere"])
def test_adding_or_removing_a_provider_reloads_the_list(admin, actions, client, make_provider, change):
    for i in range(3):
        make_provider(f"p{i}")
    page = client.get("/manage/providers/", query_string={"q": "p"}).text
    url, fp = poll_of(page)
    assert url == f"{STATUS}?q=p"
    if change == "add":
        make_provider("p9")
    elif change == "remove":
        db.session.delete(db.session.scalar(sa.select(Provider).filter_by(name="p1")))
        db.session.commit()
    else:  # not on this page but in the same search: the count shown changes
        make_provider("zp")
    assert get_poll(client, url, fp).status_code == 200
    answer = post_poll(actions, url, fp, known_of(page))
    assert json.loads(answer.headers["HX-Trigger"]) == {"providersChanged": True}
    # The list reloads itself from the URL it carries, the same search.
    assert 'id="provider-list" hx-get="/manage/providers/?q=p" hx-trigger="providersChanged' in page


def test_a_provider_outside_the_search_does_not_disturb_the_poll(admin, client, make_provider):
    make_provider("east")
    url, fp = poll_of(client.get("/manage/providers/", query_string={"q": "east"}).text)
    make_provider("west")
    assert get_poll(client, url, fp).status_code == 204


def test_provider_page_polls_its_own_status(admin, actions, client, make_provider):
    provider = make_provider("east")
    page = client.get(f"/manage/providers/{provider.id}").text
    url, fp = poll_of(page)
    assert url == f"{STATUS}?provider={provider.id}"
    assert get_poll(client, url, fp).status_code == 204
    bump(provider, status="error", status_message="Cannot connect.")
    assert get_poll(client, url, fp).status_code == 200
    answer = post_poll(actions, url, fp, f"{provider.id}.{provider.display_version - 1}")
    assert f'id="provider-status-{provider.id}"' in answer.text and ">Error<" in answer.text
    assert "provider-row-" not in answer.text


def test_post_needs_the_csrf_token(admin, client, make_provider):
    make_provider("east")
    response = client.post(STATUS, data={"fp": "x", "known": ""}, headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert "could not be verified" in response.text


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_member_gets_403(actions, client, method):
    actions.login("member")
    if method == "get":
        response = client.get(STATUS, query_string={"fp": "0-0"})
    else:
        response = actions.post(STATUS, {"fp": "0-0", "known": ""}, htmx=True)
    assert response.status_code == 403


def test_long_lists_do_not_grow_the_poll(admin, actions, client):
    db.session.execute(sa.insert(Provider), [
        {"name": f"provider-{i:04d}", "namespace": "ws", "cluster_address": "https://k",
         "display_version": 100 + i, "version": 1, "created_at": utcnow()} for i in range(5000)])
    db.session.commit()
    page = client.get("/manage/providers/").text
    url, fp = poll_of(page)
    assert len(url) + len(fp) < 60
    assert page.count('<tr id="provider-row-') == scope.PAGE_SIZE
    assert get_poll(client, url, fp).status_code == 204
    # Every row changes many times: the poll stays as short, the versions posted stay a page's.
    db.session.execute(sa.update(Provider).values(display_version=Provider.display_version + 1000))
    db.session.commit()
    assert get_poll(client, url, fp).status_code == 200
    known = known_of(page)
    assert len(known) < 40 * scope.PAGE_SIZE
    answer = post_poll(actions, url, fp, known)
    assert answer.text.count('<tr id="provider-row-') == scope.PAGE_SIZE
    assert get_poll(client, url, poll_of(answer.text)[1]).status_code == 204


# The unchanged poll's quick answer ----------------------------------------------------------
#
# A 204 says only "nothing changed", so it may rest on the role and active flag read a few
# seconds ago and on a fingerprint read within FINGERPRINT_SECONDS. Every other answer goes
# through Flask-Login and the role check as any other request does.

def current_poll(client, make_provider):
    """A page's poll URL and a fingerprint that is current: the poll would answer 204."""
    make_provider("east")
    page = client.get("/manage/providers/").text
    return poll_of(page)


def test_the_unchanged_poll_costs_at_most_two_statements_and_sets_no_cookie(admin, app, client,
                                                                          make_provider):
    url, fp = current_poll(client, make_provider)
    # Nothing read lately: the user's role and active flag, then the fingerprint.
    statements, response = statements_of(lambda: get_poll(client, url, fp))
    assert response.status_code == 204 and "Set-Cookie" not in response.headers
    assert len(statements) <= 2, statements
    assert not any("FROM users" in s and "password_hash" in s for s in statements)  # no ORM load
    # Polled again within the second: nothing to read.
    statements, response = statements_of(lambda: get_poll(client, url, fp))
    assert response.status_code == 204 and "Set-Cookie" not in response.headers
    assert len(statements) == 0, statements


@pytest.mark.parametrize("htmx", [True, False])
def test_an_anonymous_poll_is_sent_to_sign_in_even_with_a_current_fingerprint(actions, app, client,
                                                                              make_provider, htmx):
    actions.login()
    url, fp = current_poll(client, make_provider)
    assert get_poll(client, url, fp).status_code == 204
    actions.post("/logout")
    headers = {"HX-Request": "true"} if htmx else {}
    response = client.get(url, query_string={"fp": fp}, headers=headers)
    if htmx:
        assert response.status_code == 401 and response.headers["HX-Redirect"].startswith("/login")
    else:
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_a_member_gets_403_even_with_a_current_fingerprint(actions, client, make_provider):
    make_provider("east")
    actions.login("member")
    fp = fingerprint.status_fingerprint(scope.Scope())
    for _ in range(2):  # the second time the member's role is known from the first
        response = get_poll(client, STATUS, fp)
        assert response.status_code == 403


def test_a_deactivated_user_loses_the_data_at_once(admin, actions, client, make_provider):
    url, fp = current_poll(client, make_provider)
    known = known_of(client.get("/manage/providers/").text)
    assert get_poll(client, url, fp).status_code == 204  # the user's active flag is now cached
    token = actions.token()
    admin.active = False
    db.session.commit()
    # The versions and the "changed" answer go through Flask-Login: refused at once.
    posted = client.post(url, data={"fp": fp, "known": known},
                         headers={"HX-Request": "true", "X-CSRFToken": token})
    assert posted.status_code == 401 and "provider-row-" not in posted.text
    assert get_poll(client, url, "0-stale").status_code == 401
    assert client.get("/manage/providers/").status_code == 302


def test_the_quick_answer_forgets_a_deactivated_user_within_seconds(admin, app, client, make_provider,
                                                                    monkeypatch):
    url, fp = current_poll(client, make_provider)
    assert get_poll(client, url, fp).status_code == 204
    admin.active = False
    db.session.commit()
    monkeypatch.setattr(caches().recent_users, "seconds", 0.0)  # as when RECENT_USER_SECONDS have passed
    assert get_poll(client, url, fp).status_code == 401


def test_a_demoted_user_is_signed_out_on_anything_but_the_quick_answer(admin, actions, client, make_provider):
    url, fp = current_poll(client, make_provider)
    known = known_of(client.get("/manage/providers/").text)
    token = actions.token()
    assert get_poll(client, url, fp).status_code == 204
    admin.role = "member"  # a role change ends the user's sessions
    db.session.commit()
    posted = client.post(url, data={"fp": fp, "known": known},
                         headers={"HX-Request": "true", "X-CSRFToken": token})
    assert posted.status_code in (400, 401)  # the session (and its CSRF secret) is gone
    stale = get_poll(client, url, "0-stale")
    assert stale.status_code == 401 and stale.headers["HX-Redirect"].startswith("/login")


def test_a_change_by_another_process_reaches_the_poll_within_the_cache_time(admin, app, client,
                                                                           make_provider, monkeypatch):
    monkeypatch.setattr(caches().fingerprints, "seconds", 0.2)
    url, fp = current_poll(client, make_provider)
    assert get_poll(client, url, fp).status_code == 204  # read, and kept 0.2 s
    # Another process's engine: no commit is seen by this one.
    other = sa.create_engine(db.engine.url)
    with other.begin() as conn:
        conn.execute(sa.update(Provider).values(display_version=Provider.display_version + 1))
    other.dispose()
    time.sleep(0.25)
    assert get_poll(client, url, fp).status_code == 200


def test_a_commit_in_this_process_reaches_the_poll_at_once(admin, client, make_provider):
    url, fp = current_poll(client, make_provider)
    assert get_poll(client, url, fp).status_code == 204
    bump(db.session.scalar(sa.select(Provider)), status="error")
    assert get_poll(client, url, fp).status_code == 200


class TestTrustedHeader:
    @pytest.fixture
    def app_config(self):
        return {"TRUSTED_HEADER": "X-Forwarded-Email", "TRUSTED_PROXIES": "127.0.0.1"}

    def test_the_header_wins_over_the_session_on_the_quick_answer(self, actions, client, make_provider):
        actions.login()
        member = actions.user("member")
        url, fp = current_poll(client, make_provider)
        assert get_poll(client, url, fp).status_code == 204
        response = client.get(url, query_string={"fp": fp},
                              headers={"HX-Request": "true", "X-Forwarded-Email": member.email})
        assert response.status_code == 403
