"""The Workspace providers pages: list, create, edit, validation, guards, HTMX and CSRF."""
import json
import re
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from provider_admin import crypto
from provider_admin.providers import scheduling
from provider_admin.extensions import db
from provider_admin.models import AuditEvent, Provider, Workspace, utcnow

from . import seed
from .conftest import statements_of

EXEC_KUBECONFIG = """apiVersion: v1
kind: Config
current-context: eks
clusters: [{name: c, cluster: {server: "https://eks.k8s.invalid"}}]
users: [{name: u, user: {exec: {command: aws, args: [eks, get-token]}}}]
contexts: [{name: eks, context: {cluster: c, user: u}}]
"""


def form(**overrides):
    data = {
        "name": "east",
        "cluster_address": "https://k8s.invalid:6443",
        "namespace": "workspaces",
        "token": "sa-token-123",
        "pod_tolerations": "",
        "pod_node_selector": "",
        "service_account_annotations": "",
        "affinity": "",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def edit_form(provider, **overrides):
    data = form(name=provider.name, cluster_address=provider.cluster_address,
                namespace=provider.namespace, token="", version=str(provider.version))
    data.update(overrides)
    return data


def field_errors(html: str, field: str) -> str:
    match = re.search(rf'id="{field}-error">(.*?)</div>', html, re.S)
    return match.group(1) if match else ""


@pytest.fixture
def admin(actions):
    return actions.login()


def test_empty_list(admin, client):
    response = client.get("/manage/providers/")
    assert response.status_code == 200
    assert "Workspace providers" in response.text
    assert "No workspace providers yet" in response.text
    assert "Create provider" in response.text


def test_create_stores_encrypted_token_and_checks_at_once(admin, actions, make_org):
    org = make_org("Acme")
    response = actions.post("/manage/providers/new", form(organizations=str(org.id)))
    assert response.status_code == 303
    provider = db.session.scalar(sa.select(Provider))
    # The new provider is checked at once; this address does not resolve.
    assert (provider.status, provider.status_category) == ("error", "unreachable")
    assert "k8s.invalid" in provider.status_message
    assert [o.name for o in provider.organizations] == ["Acme"]
    assert b"sa-token-123" not in provider.credentials_encrypted
    assert json.loads(crypto.decrypt(provider.credentials_encrypted)) == {"token": "sa-token-123"}
    page = actions.client.get("/manage/providers/").text
    assert 'class="badge badge-error">Error<' in page
    assert "Actions for east" in page
    event = db.session.scalar(sa.select(AuditEvent).filter_by(action="provider.create"))
    assert event.changes["credentials"] == "(redacted)"


def test_create_over_htmx_answers_with_event_and_fragment(admin, actions):
    response = actions.post("/manage/providers/new", form(), htmx=True)
    assert response.status_code == 200
    assert json.loads(response.headers["HX-Trigger"]) == {"providersChanged": True}
    assert "HX-Request" in response.headers["Vary"]
    assert "<html" not in response.text
    assert 'hx-swap-oob="innerHTML"' in response.text and "Provider east created." in response.text


def test_token_is_never_sent_back_and_blank_keeps_it(admin, actions, client):
    actions.post("/manage/providers/new", form())
    provider = db.session.scalar(sa.select(Provider))
    page = client.get(f"/manage/providers/{provider.id}/edit").text
    assert "sa-token-123" not in page
    assert "A token is set" in page
    response = actions.post(f"/manage/providers/{provider.id}/edit",
                            edit_form(provider, storage_class="fast-ssd"))
    assert response.status_code == 303
    db.session.refresh(provider)
    assert provider.storage_class == "fast-ssd"
    assert json.loads(crypto.decrypt(provider.credentials_encrypted)) == {"token": "sa-token-123"}


def test_new_provider_needs_a_token(admin, actions):
    response = actions.post("/manage/providers/new", form(token=""))
    assert response.status_code == 422
    assert "token is required" in field_errors(response.text, "token")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Provider)) == 0


@pytest.mark.parametrize("field, value, message", [
    ("name", "", "This field is required"),
    ("name", "x" * 65, "between 1 and 64"),
    ("cluster_address", "http://k8s.example.com", "the token would travel in clear"),
    ("cluster_address", "k8s.example.com", "must be an https URL"),
    ("cluster_address", "", "cluster address is required"),
    ("kubeconfig", EXEC_KUBECONFIG, "not supported"),
    ("kubeconfig", "{not: [yaml", "kubeconfig"),
    ("namespace", "Bad_Namespace", "DNS-1123 label"),
    ("ca_certificate", "not a certificate", "Not a PEM certificate"),
    ("access_url", "ftp://example.com", "absolute http or https URL"),
    ("storage_class", "Fast SSD", "valid Kubernetes name"),
    ("service_account", "-sa", "valid Kubernetes name"),
    ("token", "two words", "no spaces"),
    ("pod_tolerations", seed.TOLERATIONS_BLOCK, "without the &#34;pod_tolerations&#34;: key"),
    ("pod_tolerations", '[{"key": "a", "operator": "Exist"}]', "unknown operator"),
    ("pod_tolerations", '[{"key": "a", "operator": "Exists", "effect": "NoSchedul"}]', "NoSchedule"),
    ("pod_tolerations", '{"key": "a"}', "list"),
    ("pod_node_selector", '{"disktype": 1}', "disktype"),
    ("pod_node_selector", '{"bad key!": "x"}', "bad key!"),
    ("pod_node_selector", "[1, 2", "line 1, column"),
    ("service_account_annotations", seed.ANNOTATIONS_BLOCK, "service_account_annotations"),
    ("service_account_annotations", '{"a": "{{ .Password }}"}', "Password"),
    ("affinity", seed.AFFINITY_BLOCK, "affinity"),
    ("affinity", '{"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 0, "podAffinityTerm": {"topologyKey": "x"}}]}}', "weight"),
    ("affinity", '{"nodeAffinity": {"unknownField": 1}}', "unknownField"),
    ("affinity", "[" * 70000, "KiB"),
])
def test_bad_input_is_reported_at_its_field_and_nothing_is_saved(admin, actions, make_provider,
                                                                   field, value, message):
    provider = make_provider("east", credentials_encrypted=b"x")
    before = (provider.name, provider.version)
    response = actions.post(f"/manage/providers/{provider.id}/edit",
                            edit_form(provider, **{field: value}), htmx=True)
    assert response.status_code == 422
    assert message in field_errors(response.text, field), response.text
    assert "Nothing was saved" in response.text
    assert 'id="provider-form"' in response.text and "<html" not in response.text
    db.session.refresh(provider)
    assert (provider.name, provider.version) == before


def test_duplicate_name_is_refused(admin, actions, make_provider):
    make_provider("east")
    response = actions.post("/manage/providers/new", form(name="east"))
    assert response.status_code == 422
    assert "already exists" in field_errors(response.text, "name")


def test_unset_affinity_shows_the_default_and_empty_object_clears_it(admin, actions, client,
                                                                     make_provider):
    provider = make_provider("east", credentials_encrypted=b"x")
    page = client.get(f"/manage/providers/{provider.id}/edit").text
    assert "com.coder.resource" in page and "kubernetes.io/hostname" in page
    default = scheduling.dumps(scheduling.DEFAULT_AFFINITY)
    actions.post(f"/manage/providers/{provider.id}/edit", edit_form(provider, affinity=default))
    db.session.refresh(provider)
    assert provider.affinity is None  # saving the default back keeps "default"
    actions.post(f"/manage/providers/{provider.id}/edit", edit_form(provider, affinity="{}"))
    db.session.refresh(provider)
    assert provider.affinity == {}
    page = client.get(f"/manage/providers/{provider.id}/edit").text
    assert "com.coder.resource" not in page


def test_scheduling_fields_are_stored_parsed(admin, actions, make_provider):
    provider = make_provider("east", credentials_encrypted=b"x")
    response = actions.post(f"/manage/providers/{provider.id}/edit", edit_form(
        provider,
        pod_tolerations=seed.TOLERATIONS_JSON,
        pod_node_selector='{"disktype": "ssd"}',
        service_account_annotations=seed.ANNOTATIONS_JSON,
    ))
    assert response.status_code == 303
    db.session.refresh(provider)
    assert provider.pod_tolerations == [seed.TOLERATION]
    assert provider.pod_node_selector == {"disktype": "ssd"}
    assert provider.service_account_annotations["eks.amazonaws.com/role-arn"].endswith("{{.UserEmail}}")


def test_concurrent_edit_is_a_conflict_not_an_overwrite(admin, actions, make_provider):
    provider = make_provider("east", credentials_encrypted=b"x")
    opened = edit_form(provider)  # both admins opened the form at version 1
    first = actions.post(f"/manage/providers/{provider.id}/edit", {**opened, "storage_class": "gold"})
    assert first.status_code == 303
    second = actions.post(f"/manage/providers/{provider.id}/edit", {**opened, "storage_class": "silver"})
    assert second.status_code == 409
    assert "Someone else saved this provider" in second.text
    assert 'value="silver"' in second.text  # what the user typed is kept
    db.session.refresh(provider)
    assert provider.storage_class == "gold"
    version = re.search(r'id="version" name="version" type="hidden" value="(\d+)"', second.text).group(1)
    third = actions.post(f"/manage/providers/{provider.id}/edit",
                         {**opened, "storage_class": "silver", "version": version})
    assert third.status_code == 303
    db.session.refresh(provider)
    assert provider.storage_class == "silver"


def _workspace(provider, org, owner, name="ws1"):
    ws = Workspace(name=name, owner=owner, organization=org, provider=provider, image="img",
                   cpu="1", memory="1Gi", disk="10Gi", status="running")
    db.session.add(ws)
    db.session.commit()
    return ws


def test_organization_with_workspaces_cannot_leave_the_allowlist(admin, actions, make_org,
                                                                  make_provider):
    acme, beta = make_org("Acme"), make_org("Beta")
    provider = make_provider("east", organizations=[acme, beta], credentials_encrypted=b"x")
    _workspace(provider, acme, admin)
    _workspace(provider, acme, admin, "ws2")
    response = actions.post(f"/manage/providers/{provider.id}/edit",
                            edit_form(provider, organizations=str(beta.id)))
    assert response.status_code == 422
    assert "Acme still has 2 workspaces on this provider" in field_errors(response.text, "organizations")
    db.session.refresh(provider)
    assert {o.name for o in provider.organizations} == {"Acme", "Beta"}
    response = actions.post(f"/manage/providers/{provider.id}/edit",
                            edit_form(provider, organizations=str(acme.id)))
    assert response.status_code == 303
    db.session.refresh(provider)
    assert [o.name for o in provider.organizations] == ["Acme"]


def test_empty_allowlist_is_allowed_with_a_warning(admin, client, make_provider):
    provider = make_provider("east", credentials_encrypted=b"x")
    page = client.get(f"/manage/providers/{provider.id}/edit").text
    assert "nobody can provision workspaces on this provider" in page
    assert "None: nobody can provision" in client.get("/manage/providers/").text


def test_enabling_end_to_end_encryption_tells_about_config_ssh(admin, actions, client, make_provider):
    provider = make_provider("east", credentials_encrypted=b"x")
    actions.post(f"/manage/providers/{provider.id}/edit", edit_form(provider, e2e_encryption="y"))
    page = client.get("/manage/providers/").text
    assert "rerun coder config-ssh" in page


def test_delete_asks_then_deletes(admin, actions, client, make_provider):
    provider = make_provider("east")
    dialog = actions.htmx_get(f"/manage/providers/{provider.id}/delete")
    assert dialog.status_code == 200
    assert '<dialog id="dialog"' in dialog.text and "Delete provider east?" in dialog.text
    assert ">Delete</button>" in dialog.text and ">Cancel</a>" in dialog.text
    response = actions.post(f"/manage/providers/{provider.id}/delete", htmx=True)
    assert response.status_code == 200
    assert json.loads(response.headers["HX-Trigger"]) == {"providersChanged": True}
    assert db.session.get(Provider, provider.id) is None
    assert db.session.scalar(sa.select(AuditEvent).filter_by(action="provider.delete"))


def test_delete_is_refused_while_workspaces_remain(admin, actions, make_org, make_provider):
    org = make_org("Acme")
    provider = make_provider("east", organizations=[org])
    _workspace(provider, org, admin, "my-ws")
    response = actions.post(f"/manage/providers/{provider.id}/delete")
    assert response.status_code == 422
    assert "still has 1 workspace" in response.text and "my-ws" in response.text
    assert db.session.get(Provider, provider.id) is not None


def test_cordon_needs_a_reason_and_uncordon_restores(admin, actions, client, make_provider):
    provider = make_provider("east")
    response = actions.post(f"/manage/providers/{provider.id}/cordon", {"reason": ""}, htmx=True)
    assert response.status_code == 422 and "Say why" in response.text
    response = actions.post(f"/manage/providers/{provider.id}/cordon", {"reason": "Node upgrade"})
    assert response.status_code == 303
    page = client.get("/manage/providers/").text
    assert ">Cordoned<" in page and "Node upgrade" in page
    menu = actions.htmx_get(f"/manage/providers/{provider.id}/menu").text
    assert ">Uncordon</button>" in menu and ">Cordon</a>" not in menu
    row = actions.post(f"/manage/providers/{provider.id}/uncordon", htmx=True)
    assert row.status_code == 200 and row.text.lstrip().startswith(f'<tr id="provider-row-{provider.id}"')
    assert ">Cordoned<" not in row.text


@pytest.mark.parametrize("path, fragment_marker", [
    ("menu", 'role="menu"'),
    ("edit", 'id="provider-form"'),
    ("delete", '<dialog id="dialog"'),
    ("cordon", '<dialog id="dialog"'),
])
def test_fragments_for_htmx_and_pages_without(admin, actions, client, make_provider, path,
                                              fragment_marker):
    provider = make_provider("east")
    fragment = actions.htmx_get(f"/manage/providers/{provider.id}/{path}")
    page = client.get(f"/manage/providers/{provider.id}/{path}")
    for response in (fragment, page):
        assert response.status_code == 200
        assert fragment_marker in response.text
        assert "HX-Request" in response.headers["Vary"]
    assert "<html" not in fragment.text and "<html" in page.text
    boosted = client.get(f"/manage/providers/{provider.id}/{path}",
                         headers={"HX-Request": "true", "HX-Boosted": "true"})
    assert "<html" in boosted.text


def test_menu_lists_the_actions(admin, actions, make_provider):
    provider = make_provider("east")
    menu = actions.htmx_get(f"/manage/providers/{provider.id}/menu").text
    for item in (">Edit</a>", ">Check now</button>", ">Cordon</a>", ">Delete</a>"):
        assert item in menu
    assert 'aria-label="Actions for east"' in actions.client.get("/manage/providers/").text


def test_htmx_change_without_csrf_header_is_refused(admin, client, make_provider):
    provider = make_provider("east")
    response = client.post(f"/manage/providers/{provider.id}/cordon", data={"reason": "x"},
                           headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert response.headers["HX-Retarget"] == "#flashes"
    assert "could not be verified" in response.text
    db.session.refresh(provider)
    assert not provider.cordoned


def test_cluster_error_messages_are_escaped(admin, client, make_provider):
    make_provider("east", status="error", status_message='<script>alert("x")</script>')
    page = client.get("/manage/providers/").text
    assert '<script>alert("x")</script>' not in page
    assert "&lt;script&gt;" in page


@pytest.mark.parametrize("count, page, rows", [(5, 1, 5), (200, 1, 50), (200, 4, 50), (230, 5, 30)])
def test_list_uses_a_constant_number_of_queries(admin, client, app, make_org, count, page, rows):
    orgs = [make_org(f"org{i}") for i in range(3)]
    db.session.add_all(Provider(name=f"p{i:03}", namespace="ws", cluster_address="https://k",
                                organizations=orgs[: i % 4]) for i in range(count))
    db.session.commit()
    statements = []

    def count_statement(conn, cursor, statement, *args):
        statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", count_statement)
    try:
        response = client.get("/manage/providers/", query_string={"page": page})
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count_statement)
    assert response.status_code == 200
    assert response.text.count('<tr id="provider-row-') == rows
    assert f"of {count} providers" in response.text
    # The rows with their workspace and total counts, then their organizations.
    provider_queries = [s for s in statements if "FROM providers" in s or "provider_organizations" in s
                        or "FROM workspaces" in s]
    assert len(provider_queries) == 2, provider_queries
    # Besides: the signed-in user, the filter bar's organizations (kept a second) and the
    # newest scheduler tick (kept up to five seconds): the same five however many rows.
    assert len(statements) <= 5, statements


KUBECONFIG = """apiVersion: v1
kind: Config
current-context: prod
clusters:
- name: prod-cluster
  cluster:
    server: https://prod.k8s.invalid:6443
users:
- name: ci
  user:
    token: kubeconfig-token
contexts:
- name: prod
  context: {cluster: prod-cluster, user: ci}
"""


def test_a_pasted_kubeconfig_fills_the_connection(admin, actions, client):
    response = actions.post("/manage/providers/new", form(cluster_address="", token="",
                                                          kubeconfig=KUBECONFIG))
    assert response.status_code == 303, field_errors(response.text, "kubeconfig")
    provider = db.session.scalar(sa.select(Provider))
    assert provider.cluster_address == "https://prod.k8s.invalid:6443"
    assert json.loads(crypto.decrypt(provider.credentials_encrypted)) == {"token": "kubeconfig-token"}
    page = client.get(f"/manage/providers/{provider.id}/edit").text
    assert "kubeconfig-token" not in page


def test_an_unknown_kubeconfig_context_lists_the_available_ones(admin, actions):
    response = actions.post("/manage/providers/new", form(cluster_address="", token="",
                                                          kubeconfig=KUBECONFIG,
                                                          kubeconfig_context="staging"))
    assert response.status_code == 422
    assert "prod" in field_errors(response.text, "kubeconfig")


def test_the_form_on_its_own_page_goes_to_the_list_after_saving(admin, client, actions):
    page = client.get("/manage/providers/new").get_data(as_text=True)
    assert """hx-vals='{"standalone": "1"}'""" in page
    panel = actions.htmx_get("/manage/providers/new").get_data(as_text=True)
    assert "standalone" not in panel  # the list's panel swaps itself and refreshes the list

    bad = actions.post("/manage/providers/new", form(name="", standalone="1"), htmx=True)
    assert bad.status_code == 422 and """hx-vals='{"standalone": "1"}'""" in bad.get_data(as_text=True)
    saved = actions.post("/manage/providers/new", form(standalone="1"), htmx=True)
    assert saved.status_code == 200 and saved.headers["HX-Redirect"] == "/manage/providers/"
    assert "Provider east created." in client.get("/manage/providers/").get_data(as_text=True)


@pytest.mark.parametrize("page", ["cordon", "delete", "menu"])
def test_dialogs_on_their_own_page_are_plain_forms(admin, client, make_provider, page):
    provider = make_provider()
    html = client.get(f"/manage/providers/{provider.id}/{page}").get_data(as_text=True)
    # No list or row on this page for an HTMX answer to update: htmx leaves these forms alone.
    assert '<main id="main" hx-disable>' in html and 'method="post"' in html


def _many(count, **fields):
    db.session.add_all(Provider(name=f"p{i:03}", namespace="ws", cluster_address="https://k", **fields)
                       for i in range(count))
    db.session.commit()


def _names(html: str) -> list[str]:
    return re.findall(r'<th scope="row"><a href="/manage/providers/\d+">([^<]+)</a>', html)


def test_the_list_is_paginated_by_name(admin, client):
    _many(120)
    first = client.get("/manage/providers/").text
    assert _names(first) == [f"p{i:03}" for i in range(50)]
    assert "1–50 of 120 providers" in first
    assert 'href="/manage/providers/?page=2" hx-get="/manage/providers/?page=2"' in first
    assert 'rel="next"' in first and 'rel="prev"' not in first
    last = client.get("/manage/providers/?page=3").text
    assert _names(last) == [f"p{i:03}" for i in range(100, 120)]
    assert "101–120 of 120 providers" in last
    assert 'aria-current="page" href="/manage/providers/?page=3"' in last
    # A page past the end (say, after deletions) shows the last one.
    assert _names(client.get("/manage/providers/?page=9").text) == _names(last)
    assert _names(client.get("/manage/providers/?page=x").text) == _names(first)


def test_search_by_name_without_and_with_htmx(admin, client, actions):
    _many(120)
    page = client.get("/manage/providers/", query_string={"q": "P11"}).text
    assert '<form id="provider-filters" class="filters" role="search" aria-label="Filter providers" method="get"' in page
    assert 'value="P11"' in page and "<html" in page
    assert _names(page) == [f"p{i:03}" for i in range(110, 120)]
    assert "1–10 of 10 providers whose name contains “P11”" in page
    fragment = actions.htmx_get("/manage/providers/", query_string={"q": "p0"})
    assert "<html" not in fragment.text and fragment.text.lstrip().startswith('<section id="provider-list"')
    assert "HX-Request" in fragment.headers["Vary"]
    assert len(_names(fragment.text)) == 50 and "of 100 providers" in fragment.text
    assert 'href="/manage/providers/?q=p0&amp;page=2"' in fragment.text
    # Wildcards are searched for literally.
    none = client.get("/manage/providers/", query_string={"q": "%"}).text
    assert _names(none) == [] and "No providers match these filters." in none


def test_rows_come_from_the_cache_until_what_they_show_changes(admin, client, actions, make_org):
    from provider_admin.models import Organization
    org = make_org("Acme")
    _many(3, organizations=[org], status="ready", last_checked_at=utcnow())
    render = []
    from flask import template_rendered

    def record(sender, template, context, **extra):
        if template.name == "providers/_row.html":
            render.append(context["provider"].name)

    template_rendered.connect(record, actions.app)
    try:
        first = client.get("/manage/providers/").text
        assert sorted(render) == ["p000", "p001", "p002"]
        render.clear()
        assert client.get("/manage/providers/").text == first
        assert render == []
        # A changed status, a renamed organization, a new workspace: each shows at once.
        provider = db.session.scalar(sa.select(Provider).filter_by(name="p001"))
        provider.status, provider.status_message = "error", "Cannot connect."
        provider.display_version += 1
        db.session.commit()
        page = client.get("/manage/providers/").text
        assert render == ["p001"] and "Cannot connect." in page
        render.clear()
        db.session.scalar(sa.select(Organization)).name = "Acme Corp"
        db.session.commit()
        assert client.get("/manage/providers/").text.count("<td data-label=\"Organizations\">Acme Corp</td>") == 3
        render.clear()
        _workspace(provider, org, admin, "w1")
        page = client.get("/manage/providers/").text
        assert render == ["p001"] and f'id="provider-row-{provider.id}" data-provider-id="{provider.id}" ' \
            f'data-version="{provider.display_version}" data-workspaces="1"' in page
    finally:
        template_rendered.disconnect(record, actions.app)


def test_last_checked_is_a_time_element_kept_current_in_cached_rows(admin, client, make_provider,
                                                                   monkeypatch):
    from provider_admin import templating

    checked = utcnow() - timedelta(minutes=3)
    make_provider("east", last_checked_at=checked)
    page = client.get("/manage/providers/").text
    when = checked.isoformat(timespec="seconds")
    assert f'<time datetime="{when}" data-relative>3 minutes ago</time>' in page
    later = utcnow() + timedelta(hours=2)
    monkeypatch.setattr(templating, "datetime", type("clock", (), {"now": staticmethod(lambda tz: later)}))
    assert ">2 hours ago</time>" in client.get("/manage/providers/").text


def test_back_to_a_pushed_url_gets_the_whole_page(admin, client):
    # htmx asks for a pushed URL again, with this header, when its history cache misses.
    page = client.get("/manage/providers/new", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert "<html" in page.get_data(as_text=True) and "Create provider" in page.get_data(as_text=True)


# The list fragment, served again for a second ---------------------------------------------

def _other_process():
    """An engine of its own, as another web worker or the scheduler has: this process sees
    none of its commits."""
    return sa.create_engine(db.engine.url)


def test_a_list_shown_again_within_the_second_reads_only_its_fingerprint(admin, client):
    _many(60)
    first = client.get("/manage/providers/").text
    statements, again = statements_of(lambda: client.get("/manage/providers/"))
    assert again.text == first
    provider_queries = [s for s in statements if "FROM providers" in s or "provider_organizations" in s]
    assert len(provider_queries) == 1 and "sum(" in provider_queries[0].lower(), provider_queries
    assert len(statements) <= 2, statements  # the user (Flask-Login), the fingerprint


def test_a_change_by_another_process_shows_on_the_next_load(admin, client):
    _many(3)
    assert "Cannot connect." not in client.get("/manage/providers/").text
    other = _other_process()
    with other.begin() as conn:  # what the scheduler writes when a row's display changes
        conn.execute(sa.update(Provider).where(Provider.name == "p001").values(
            status="error", status_message="Cannot connect.",
            display_version=Provider.display_version + 1))
    other.dispose()
    assert "Cannot connect." in client.get("/manage/providers/").text


def test_what_the_fingerprint_misses_shows_within_the_list_time(admin, client, make_org, monkeypatch):
    from provider_admin.caches import caches

    monkeypatch.setattr(caches().lists, "seconds", 0.2)
    org = make_org("Acme")
    _many(2, organizations=[org])
    assert client.get("/manage/providers/").text.count("<td data-label=\"Organizations\">Acme</td>") == 2
    other = _other_process()
    with other.begin() as conn:
        conn.execute(sa.text("UPDATE organizations SET name = 'Acme Corp'"))
    other.dispose()
    time.sleep(0.25)
    assert client.get("/manage/providers/").text.count("<td data-label=\"Organizations\">Acme Corp</td>") == 2


def test_the_list_kept_carries_nothing_of_the_user(admin, client, actions):
    _many(3)
    first = client.get("/manage/providers/").text
    actions.post("/logout")
    manager = actions.login("manager")
    page = client.get("/manage/providers/").text
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
    assert f"{manager.username} · " in page and f"{admin.username} · " not in page
    listing = re.compile(r'<section id="provider-list".*</section>', re.S)
    kept = listing.search(page).group(0)
    assert kept == listing.search(first).group(0)
    assert token not in kept and "csrf" not in kept.lower() and "admin" not in kept


def test_a_search_fragment_is_kept_apart_from_the_page(admin, client, actions):
    _many(3)
    client.get("/manage/providers/")
    fragment = actions.htmx_get("/manage/providers/?q=p001")
    assert fragment.text.startswith('<section id="provider-list"') and _names(fragment.text) == ["p001"]
    assert _names(client.get("/manage/providers/").text) == ["p000", "p001", "p002"]
