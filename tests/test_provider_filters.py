"""The providers page's filters (status, organization, cordon, name): a plain GET form whose URL
names them, the same rule as the API's list, a clear message for a filter that is not one,
and a badge poll that follows the filtered list."""
import html
import json
import re

import pytest

from provider_admin.extensions import db
from provider_admin.models import Provider, Role
from provider_admin.tokens import service as tokens

from .conftest import field_error
from .test_status_poll import get_poll, known_of, poll_of, post_poll
from .tests_api import call

PAGE = "/manage/providers/"
SIX = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")


@pytest.fixture
def admin(actions):
    return actions.login()


@pytest.fixture
def site(make_org, make_provider):
    """Six providers of every kind: statuses, organizations (none, one, both), cordons."""
    acme, globex = make_org("Acme"), make_org("Globex")
    orgs = {"alpha": [acme], "bravo": [globex], "charlie": [acme, globex], "delta": [], "echo": [acme],
            "foxtrot": [globex]}
    status = {"alpha": "ready", "bravo": "ready", "charlie": "error", "delta": "pending", "echo": "error",
              "foxtrot": "ready"}
    for name in SIX:
        make_provider(name, organizations=orgs[name], status=status[name], cordoned=name in ("bravo", "echo"),
                      cordon_reason="upgrade" if name in ("bravo", "echo") else None)
    return {"acme": acme.id, "globex": globex.id}


def names(text: str) -> list[str]:
    return re.findall(r'<th scope="row"><a href="/manage/providers/\d+">([^<]+)</a>', text)


def shown(client, **args) -> list[str]:
    response = client.get(PAGE, query_string=args)
    assert response.status_code == 200, (args, response.status_code)
    return names(response.text)


def selected(text: str, field: str) -> str:
    """The option the page shows selected in a filter's select."""
    select = re.search(rf'<select[^>]* id="provider-filter-{field}"[^>]*>(.*?)</select>', text, re.S).group(1)
    found = re.findall(r'<option selected value="([^"]*)"', select)
    return found[0] if found else ""


def oob_error(text: str, field: str) -> str:
    """A filter's error as an HTMX answer sends it, out of band."""
    match = re.search(rf'<div class="error" id="provider-filter-{field}-error" hx-swap-oob="true">(.*?)</div>',
                      text, re.S)
    assert match, f"no out-of-band error region for {field}"
    return html.unescape(re.sub(r"<[^>]+>", " ", match.group(1))).strip()


# Each filter, and together ------------------------------------------------------------------

def test_each_filter(admin, client, site):
    assert shown(client) == list(SIX)
    assert shown(client, status="ready") == ["alpha", "bravo", "foxtrot"]
    assert shown(client, status="error") == ["charlie", "echo"]
    assert shown(client, status="pending") == ["delta"]
    assert shown(client, organization=site["acme"]) == ["alpha", "charlie", "echo"]
    assert shown(client, organization=site["globex"]) == ["bravo", "charlie", "foxtrot"]
    assert shown(client, cordoned="yes") == ["bravo", "echo"]
    assert shown(client, cordoned="no") == ["alpha", "charlie", "delta", "foxtrot"]
    assert shown(client, q="HA") == ["alpha", "charlie"]
    assert shown(client, q="_") == [] and shown(client, q="%") == []  # literally, not wildcards


@pytest.mark.parametrize("args, expected", [
    ({"status": "ready", "cordoned": "no"}, ["alpha", "foxtrot"]),
    ({"status": "ready", "organization": "globex"}, ["bravo", "foxtrot"]),
    ({"status": "error", "organization": "acme", "cordoned": "yes"}, ["echo"]),
    ({"organization": "acme", "q": "o"}, ["echo"]),
    ({"status": "pending", "organization": "acme"}, []),
    ({"status": "ready", "organization": "globex", "cordoned": "no", "q": "fox"}, ["foxtrot"]),
])
def test_filters_combine(admin, client, site, args, expected):
    args = {k: site.get(v, v) if k == "organization" else v for k, v in args.items()}
    assert shown(client, **args) == expected


def test_the_page_and_the_api_apply_one_rule(admin, app, client, site):
    """Every combination of filters selects the same providers on the page as in the API."""
    _, secret = tokens.create(admin, "script", 30, read_only=True)
    api = app.test_client()
    org_names = {site["acme"]: "Acme", site["globex"]: "Globex"}
    for status in ("", "pending", "ready", "error"):
        for organization in ("", site["acme"], site["globex"]):
            for cordoned in ("", "yes", "no"):
                for q in ("", "a", "ch"):
                    page = {"status": status, "organization": organization, "cordoned": cordoned, "q": q}
                    query = {"status": status or None, "organization": org_names.get(organization),
                             "cordoned": {"yes": "true", "no": "false"}.get(cordoned), "name": q or None}
                    answer = call(api, "GET", "/providers", secret,
                                  query_string={k: v for k, v in query.items() if v is not None})
                    assert answer.status_code == 200
                    assert shown(client, **page) == sorted(p["name"] for p in answer.json["items"]), page


def test_the_url_names_the_filters_and_the_form_shows_them(admin, client, site):
    args = {"status": "ready", "organization": site["globex"], "cordoned": "no", "q": "fox"}
    text = client.get(PAGE, query_string=args).text
    assert selected(text, "status") == "ready"
    assert selected(text, "organization") == str(site["globex"])
    assert selected(text, "cordoned") == "no"
    assert 'id="provider-search" name="q" value="fox"' in text
    # The list reloads (after a change elsewhere) and polls with the same filters.
    expected = f"?q=fox&amp;status=ready&amp;organization={site['globex']}&amp;cordoned=no"
    assert f'<section id="provider-list" hx-get="/manage/providers/{expected}"' in text
    assert f'hx-get="/manage/providers/status{expected}" hx-trigger="every' in text


def test_page_links_keep_the_filters(admin, client, make_provider):
    for i in range(60):
        make_provider(f"p{i:02}", status="ready" if i % 2 else "error")
    text = client.get(PAGE, query_string={"status": "ready"}).text
    assert len(names(text)) == 30 and "1–30 of 30 providers" in text
    text = client.get(PAGE, query_string={"status": "error", "q": "p"}).text
    assert "1–30 of 30" in text
    for i in range(60, 140):
        make_provider(f"p{i:03}", status="error")
    text = client.get(PAGE, query_string={"status": "error"}).text
    assert "1–50 of 110 providers" in text
    assert 'href="/manage/providers/?status=error&amp;page=2"' in text
    second = client.get(PAGE, query_string={"status": "error", "page": 2}).text
    assert "51–100 of 110" in second and all(n.startswith("p") for n in names(second))
    # A page past the end of the filtered list shows its last page, still filtered.
    last = client.get(PAGE, query_string={"status": "error", "page": 9}).text
    assert "101–110 of 110" in last


# The form, without JavaScript and with htmx --------------------------------------------------

def test_the_filter_bar_is_a_plain_get_form_with_labelled_fields(admin, client, site):
    text = client.get(PAGE).text
    form = re.search(r'<form id="provider-filters".*?</form>', text, re.S).group(0)
    assert re.match(r'<form [^>]*method="get"\s+action="/manage/providers/"', form)
    for label, field_id, name in (("Status", "provider-filter-status", "status"),
                                  ("Organization", "provider-filter-organization", "organization"),
                                  ("Cordoned", "provider-filter-cordoned", "cordoned"),
                                  ("Name contains", "provider-search", "q")):
        assert f'<label for="{field_id}">{label}</label>' in form
        assert re.search(rf'id="{field_id}"[^>]* name="{name}"|name="{name}"[^>]* id="{field_id}"', form)
    assert re.findall(r'<option[^>]*>([^<]*)</option>', form) == [
        "All", "Pending", "Ready", "Error", "All", "Acme", "Globex", "All", "Cordoned", "Not cordoned"]
    assert '<button type="submit">Filter</button>' in form
    assert '<a href="/manage/providers/">Clear filters</a>' in form
    # What the browser sends on submit without JavaScript: every field, the empty ones too.
    plain = client.get(PAGE, query_string={"status": "", "organization": str(site["acme"]), "cordoned": "",
                                           "q": ""})
    assert plain.status_code == 200 and "<html" in plain.text
    assert names(plain.text) == ["alpha", "charlie", "echo"]


def test_htmx_gets_the_list_with_the_count_and_the_errors_out_of_band(admin, client, actions, site):
    response = actions.htmx_get(PAGE, query_string={"status": "ready", "cordoned": "no"})
    assert response.status_code == 200 and "HX-Request" in response.headers["Vary"]
    text = response.text
    assert text.lstrip().startswith('<section id="provider-list"') and "<html" not in text
    assert names(text) == ["alpha", "foxtrot"]
    assert '<p id="provider-count" hx-swap-oob="innerHTML">2 providers match these filters.' in text
    assert all(oob_error(text, field) == "" for field in ("status", "organization", "cordoned", "q"))
    page = client.get(PAGE, query_string={"status": "ready", "cordoned": "no"}).text
    assert '<p id="provider-count" class="visually-hidden" role="status">2 providers match these filters.' in page
    one = actions.htmx_get(PAGE, query_string={"q": "delta"}).text
    assert "1 provider matches these filters." in one
    assert "6 providers." in client.get(PAGE).text


def test_no_match_is_not_no_providers(admin, client, make_provider):
    text = client.get(PAGE).text
    assert "No workspace providers yet." in text and "No providers match" not in text
    make_provider("east", status="ready")
    text = client.get(PAGE, query_string={"status": "error"}).text
    assert "No providers match these filters." in text and "No workspace providers yet" not in text
    empty = re.search(r'<p class="empty">(.*?)</p>', text).group(1)
    assert '<a href="/manage/providers/">Clear filters</a>' in empty
    # Even empty, the filtered list polls: a provider that comes to match will show up.
    url, fp = poll_of(text)
    assert url == "/manage/providers/status?status=error" and fp == "0-0"


# Who sees what -------------------------------------------------------------------------------

def test_members_get_nothing_of_the_page_or_its_poll(actions, client, make_org, make_provider):
    org = make_org("Secret Org")
    make_provider("hidden-east", organizations=[org], status="ready")
    actions.login(Role.MEMBER.value, organizations=[org])
    for url in (f"{PAGE}?organization={org.id}", f"{PAGE}?status=ready",
                f"/manage/providers/status?organization={org.id}&fp=x"):
        response = client.get(url)
        assert response.status_code == 403, url
        assert "hidden-east" not in response.text and "Secret Org" not in response.text


@pytest.mark.parametrize("role", [Role.MANAGER.value, Role.ADMIN.value])
def test_managers_and_admins_choose_among_every_organization(actions, client, site, make_org, role):
    make_org("Initech")  # no providers: still a choice (the answer is then "none match")
    actions.login(role)
    text = client.get(PAGE).text
    select = re.search(r'<select[^>]* id="provider-filter-organization".*?</select>', text, re.S).group(0)
    assert re.findall(r'<option[^>]*>([^<]*)</option>', select) == ["All", "Acme", "Globex", "Initech"]


# Bad input: said at the field, never a 5xx, never a silent empty list --------------------------

@pytest.mark.parametrize("args, field, message", [
    ({"status": "foo"}, "status", "Unknown status “foo”. Showing every status."),
    ({"status": "Ready"}, "status", "Unknown status “Ready”. Showing every status."),
    ({"organization": "abc"}, "organization", "Unknown organization “abc”. Showing every organization."),
    ({"organization": "999999"}, "organization", "Unknown organization “999999”. Showing every organization."),
    ({"organization": "-1"}, "organization", "Unknown organization “-1”. Showing every organization."),
    ({"cordoned": "maybe"}, "cordoned",
     "Unknown cordon filter “maybe”. Showing cordoned and not cordoned providers."),
    ({"cordoned": "true"}, "cordoned",
     "Unknown cordon filter “true”. Showing cordoned and not cordoned providers."),
    ({"q": "x" * 65}, "q", "At most 64 characters. Showing every name."),
])
def test_a_bad_filter_is_said_at_its_field_and_left_out(admin, client, actions, site, args, field, message):
    response = client.get(PAGE, query_string=args)
    assert response.status_code == 422
    assert field_error(response.text, f"provider-filter-{field}") == message
    assert names(response.text) == list(SIX)  # not filtered by it, and said so
    others = {"status", "organization", "cordoned", "q"} - {field}
    assert all(field_error(response.text, f"provider-filter-{other}") == "" for other in others)
    fragment = actions.htmx_get(PAGE, query_string=args)
    assert fragment.status_code == 422 and oob_error(fragment.text, field) == message
    assert names(fragment.text) == list(SIX)


def test_the_valid_filters_still_apply_beside_a_bad_one(admin, client, site):
    response = client.get(PAGE, query_string={"status": "nonsense", "cordoned": "yes"})
    assert response.status_code == 422 and names(response.text) == ["bravo", "echo"]
    assert selected(response.text, "cordoned") == "yes"
    assert "Unknown status “nonsense”" in field_error(response.text, "provider-filter-status")
    # The poll and the reload follow what the list shows, without the refused filter.
    url, _ = poll_of(response.text)
    assert url == "/manage/providers/status?cordoned=yes"


def test_an_organization_deleted_since_is_said(admin, client, site, make_org):
    gone = make_org("Initech")
    text = client.get(PAGE).text
    assert f'<option value="{gone.id}">Initech</option>' in text
    db.session.delete(gone)
    db.session.commit()
    response = client.get(PAGE, query_string={"organization": gone.id, "status": "ready"})
    assert response.status_code == 422
    assert field_error(response.text, "provider-filter-organization") == \
        f"Unknown organization “{gone.id}”. Showing every organization."
    assert names(response.text) == ["alpha", "bravo", "foxtrot"]


def test_what_a_filter_echoes_is_text(admin, client, site):
    response = client.get(PAGE, query_string={"status": '<img src=x onerror="alert(1)">',
                                              "q": '"><script>x</script>'})
    assert response.status_code == 200 or response.status_code == 422
    assert "<img src=x" not in response.text and "<script>x" not in response.text
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in response.text


@pytest.mark.parametrize("args", [
    {"status": ["ready", "error"]}, {"organization": "9" * 40}, {"organization": "0"},
    {"organization": "１"}, {"cordoned": ""}, {"q": " "}, {"page": "-1", "status": "x"},
    {"provider": "1", "status": "ready"}, {"q": "ea\x00st"}, {"status": "\x1b[31m"}, {"organization": "1e3", "cordoned": "no", "q": "%_\\"},
])
def test_odd_query_strings_never_fail(admin, client, actions, site, args):
    for response in (client.get(PAGE, query_string=args), actions.htmx_get(PAGE, query_string=args),
                     client.get("/manage/providers/status", query_string={**args, "fp": "x"},
                                headers={"HX-Request": "true"})):
        assert response.status_code in (200, 204, 400, 422), (args, response.status_code)
        if response.status_code == 400:  # the app's guard on every query string (web.py)
            assert "control characters" in response.text


# The badge poll follows the filters ----------------------------------------------------------

def _set(name: str, **fields) -> Provider:
    provider = db.session.scalar(db.select(Provider).filter_by(name=name))
    for key, value in fields.items():
        setattr(provider, key, value)
    db.session.commit()  # the database bumps display_version (migration 0010)
    return provider


def test_a_change_outside_the_filters_does_not_wake_the_poll(admin, client, site):
    url, fp = poll_of(client.get(PAGE, query_string={"status": "ready"}).text)
    assert get_poll(client, url, fp).status_code == 204
    _set("charlie", status_message="Still failing.")  # Error: not on this filtered page
    _set("delta", cordoned=True)
    assert get_poll(client, url, fp).status_code == 204
    _set("alpha", status_message="Fine.")  # on the page: it changes the fingerprint
    assert get_poll(client, url, fp).status_code == 200


def test_a_provider_that_stops_matching_leaves_the_list(admin, client, actions, site):
    text = client.get(PAGE, query_string={"status": "ready"}).text
    url, fp = poll_of(text)
    _set("bravo", status="error", status_message="Cannot connect.")
    stale = get_poll(client, url, fp)
    assert stale.status_code == 200 and json.loads(stale.headers["HX-Trigger"]) == {"providerStatusStale": True}
    synced = post_poll(actions, url, fp, known_of(text))
    assert json.loads(synced.headers["HX-Trigger"]) == {"providersChanged": True}
    # What the list then loads (its own hx-get): bravo is gone, the filter holds.
    reload = re.search(r'<section id="provider-list" hx-get="([^"]+)"', text).group(1).replace("&amp;", "&")
    after = actions.htmx_get(reload).text
    assert names(after) == ["alpha", "foxtrot"] and "Cannot connect." not in after
    new_url, new_fp = poll_of(after)
    assert new_url == url and get_poll(client, new_url, new_fp).status_code == 204


def test_a_provider_that_comes_to_match_appears(admin, client, actions, site, make_provider):
    text = client.get(PAGE, query_string={"status": "error", "organization": site["globex"]}).text
    assert names(text) == ["charlie"]
    url, fp = poll_of(text)
    _set("foxtrot", status="error", status_message="Token expired.")
    assert get_poll(client, url, fp).status_code == 200
    assert json.loads(post_poll(actions, url, fp, known_of(text)).headers["HX-Trigger"]) == {"providersChanged": True}
    after = actions.htmx_get(url.replace("/status", "/")).text
    assert names(after) == ["charlie", "foxtrot"] and "Token expired." in after


def test_a_badge_that_changes_while_still_matching_comes_out_of_band(admin, client, actions, site):
    text = client.get(PAGE, query_string={"organization": site["acme"], "cordoned": "no"}).text
    assert names(text) == ["alpha", "charlie"]
    url, fp = poll_of(text)
    alpha = _set("alpha", status="error", status_message="Forbidden: cannot list pods.")
    assert get_poll(client, url, fp).status_code == 200
    synced = post_poll(actions, url, fp, known_of(text))
    assert "HX-Trigger" not in synced.headers
    rows = re.findall(r'<tr id="provider-row-(\d+)"[^>]* hx-swap-oob="true"', synced.text)
    assert rows == [str(alpha.id)]
    assert '<span class="badge badge-error">Error</span>' in synced.text
    assert "Forbidden: cannot list pods." in synced.text
    new_url, new_fp = poll_of(synced.text)
    assert new_url == url and get_poll(client, new_url, new_fp).status_code == 204
