"""The badge poll: a GET of a short fingerprint answered 204 while nothing changed; on a change
a POST of the versions shown, answered with only the changed rows out of band."""
import json
import re
from datetime import timedelta
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa

from provider_admin.extensions import db
from provider_admin.models import Provider, Workspace, utcnow
from provider_admin.providers import queries

STATUS = "/manage/providers/status"


@pytest.fixture
def admin(actions):
    return actions.login()


def poll_of(html: str) -> tuple[str, str]:
    """(URL, fingerprint) of the page's poll, as the browser sends them."""
    url = re.search(r'<div hx-get="([^"]+)" hx-trigger="every', html).group(1).replace("&amp;", "&")
    return url, re.search(r'"fp": "([^"]+)"', html).group(1)


def known_of(html: str) -> str:
    """What providerAdmin.knownVersions() sends for the rows of `html`."""
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
        assert fp == queries.status_fingerprint(queries.Scope.from_args(_args(args)))
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
    assert page.count('<tr id="provider-row-') == queries.PAGE_SIZE
    assert get_poll(client, url, fp).status_code == 204
    # Every row changes many times: the poll stays as short, the versions posted stay a page's.
    db.session.execute(sa.update(Provider).values(display_version=Provider.display_version + 1000))
    db.session.commit()
    assert get_poll(client, url, fp).status_code == 200
    known = known_of(page)
    assert len(known) < 40 * queries.PAGE_SIZE
    answer = post_poll(actions, url, fp, known)
    assert answer.text.count('<tr id="provider-row-') == queries.PAGE_SIZE
    assert get_poll(client, url, poll_of(answer.text)[1]).status_code == 204
