"""/api/v1/providers (SPEC §10): what a manager does on the providers pages, with a token,
through the same form, guards and audit entries; ETag and If-Match; filters and cursor paging."""
import json

import pytest

from provider_admin.extensions import db
from provider_admin.kube import scheduling
from provider_admin.models import AuditEvent, Organization, Provider, Role, Workspace
from provider_admin.tokens import service as tokens

from .tests_api import call

TOLERATIONS = [{"key": "dedicated", "operator": "Equal", "value": "workspaces", "effect": "NoSchedule"}]


@pytest.fixture
def manager(actions, make_org):
    make_org("Acme")
    make_org("Globex")
    return actions.user(Role.MANAGER.value, username="ops")


@pytest.fixture
def api(app, manager):
    _, secret = tokens.create(manager, "script", 30, read_only=False)
    client = app.test_client()
    return lambda method, path, **kw: call(client, method, path, secret, **kw)


def body_for(kube, name="east", **fields):
    conn = kube.connection()
    return {"name": name, "cluster_address": conn.server, "namespace": "ws", "ca_certificate": conn.ca_cert,
            "token": conn.token, "organizations": ["Acme"], **fields}


def events(action: str) -> list[AuditEvent]:
    return db.session.scalars(db.select(AuditEvent).filter_by(action=action).order_by(AuditEvent.id)).all()


def test_register_deploy_and_see_ready(api, kube_api_tls):
    response = api("POST", "/providers", json=body_for(kube_api_tls, pod_tolerations=TOLERATIONS))
    assert response.status_code == 201, response.json
    provider = response.json
    assert response.headers["Location"].endswith(f"/api/v1/providers/{provider['id']}")
    assert response.headers["ETag"] == f'"{provider["version"]}"'
    assert provider["status"]["state"] == "pending" and provider["pod_tolerations"] == TOLERATIONS
    assert provider["credentials"] == {"kind": "token", "token_expires_at": None}
    assert "test-token" not in response.text and [o["name"] for o in provider["organizations"]] == ["Acme"]
    deployed = api("POST", f"/providers/{provider['id']}/deploy")
    assert deployed.status_code == 200 and deployed.json["succeeded"], deployed.json
    assert {"Role", "ConfigMap"} <= {o["kind"] for o in deployed.json["objects"]}
    assert api("GET", f"/providers/{provider['id']}").json["status"]["state"] == "ready"
    assert api("POST", f"/providers/{provider['id']}/check").json["status"]["state"] == "ready"
    manifest = api("GET", f"/providers/{provider['id']}/manifest")
    assert manifest.mimetype == "application/yaml" and "namespace: ws" in manifest.text
    event = events("provider.create")[0]
    assert event.actor == "ops@example.com" and event.changes["credentials"] == "(redacted)"


def test_the_api_and_the_page_make_the_same_provider_and_audit_entry(api, actions, client, manager,
                                                                     kube_api_tls, make_org):
    api("POST", "/providers", json=body_for(kube_api_tls, "via-api", storage_class="fast",
                                           pod_node_selector={"pool": "ws"}))
    actions.login(Role.MANAGER.value, username="pages")
    conn = kube_api_tls.connection()
    acme = db.session.scalar(db.select(Organization.id).filter_by(name="Acme"))
    form = {"name": "via-page", "cluster_address": conn.server, "namespace": "ws", "ca_certificate": conn.ca_cert,
            "token": conn.token, "organizations": [acme], "storage_class": "fast",
            "pod_node_selector": '{"pool": "ws"}', "affinity": json.dumps(scheduling.DEFAULT_AFFINITY)}
    assert actions.post("/manage/providers/new", form).status_code == 303
    by_api, by_page = (db.session.scalar(db.select(Provider).filter_by(name=n)) for n in ("via-api", "via-page"))
    columns = ("cluster_address", "namespace", "ca_cert", "credentials_kind", "storage_class", "affinity",
               "pod_node_selector", "pod_tolerations", "e2e_encryption", "cordoned")
    assert {c: getattr(by_api, c) for c in columns} == {c: getattr(by_page, c) for c in columns}
    assert [o.name for o in by_api.organizations] == [o.name for o in by_page.organizations]
    api_event, page_event = events("provider.create")
    drop = lambda changes: {k: v for k, v in changes.items() if k != "name"}  # noqa: E731
    assert drop(api_event.changes) == drop(page_event.changes)


@pytest.mark.parametrize("fields, pointer, message", [
    ({"namespace": "Not A Label"}, "/namespace", "lowercase"),
    ({"pod_tolerations": [{"key": "a", "operator": "Equal", "effect": "NoSchedul"}]}, "/pod_tolerations",
     "NoSchedul"),
    ({"pod_tolerations": [{"key": "a", "effekt": "NoSchedule"}]}, "/pod_tolerations/0/effekt", "Extra inputs"),
    ({"organizations": ["Nowhere"]}, "/organizations", "no organization named Nowhere"),
    ({"token": None}, "/token", "A service account token is required"),
    ({"cluster_address": "http://169.254.169.254"}, "/cluster_address", "https"),
])
def test_refusals_point_at_the_field_with_the_forms_words(api, kube_api_tls, fields, pointer, message):
    body = {**body_for(kube_api_tls), **fields}
    response = api("POST", "/providers", json=body)
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    problems = {e["pointer"]: e["detail"] for e in response.json["errors"]}
    assert pointer in problems and message in problems[pointer], problems
    assert db.session.scalar(db.select(db.func.count()).select_from(Provider)) == 0


def test_updates_need_the_etag_and_a_concurrent_change_is_412(api, kube_api_tls):
    created = api("POST", "/providers", json=body_for(kube_api_tls)).json
    url = f"/providers/{created['id']}"
    response = api("PATCH", url, json={"storage_class": "fast"})
    assert response.status_code == 428 and response.json["title"] == "Precondition required"
    tag = api("GET", url).headers["ETag"]
    first = api("PATCH", url, json={"storage_class": "fast"}, headers={"If-Match": tag})
    assert first.status_code == 200 and first.json["storage_class"] == "fast"
    assert first.headers["ETag"] != tag
    second = api("PATCH", url, json={"storage_class": "slow"}, headers={"If-Match": tag})
    assert second.status_code == 412 and second.headers["ETag"] == first.headers["ETag"]
    assert api("GET", url).json["storage_class"] == "fast"
    assert len(events("provider.update")) == 1


def test_a_moved_address_needs_the_token_again(api, kube_api_tls):
    created = api("POST", "/providers", json=body_for(kube_api_tls)).json
    url = f"/providers/{created['id']}"
    tag = api("GET", url).headers["ETag"]
    response = api("PATCH", url, json={"cluster_address": "https://elsewhere.example.com"},
                   headers={"If-Match": tag})
    assert response.status_code == 422
    assert "The cluster address changed" in {e["pointer"]: e["detail"] for e in response.json["errors"]}["/token"]


def test_delete_is_refused_while_workspaces_run_and_audited_when_done(api, kube_api_tls, actions):
    created = api("POST", "/providers", json=body_for(kube_api_tls)).json
    provider = db.session.get(Provider, created["id"])
    dev = actions.user(Role.MEMBER.value, username="dev", organizations=list(provider.organizations))
    db.session.add(Workspace(name="box", owner=dev, organization=provider.organizations[0], provider=provider,
                             image="busybox", cpu="1", memory="1Gi", disk="1Gi", namespace="ws"))
    db.session.commit()
    response = api("DELETE", f"/providers/{created['id']}")
    assert response.status_code == 409 and "1 workspace runs on east" in response.json["detail"]
    db.session.execute(db.delete(Workspace))
    db.session.commit()
    assert api("DELETE", f"/providers/{created['id']}", headers={"If-Match": '"999"'}).status_code == 412
    assert api("DELETE", f"/providers/{created['id']}").status_code == 204
    assert api("GET", f"/providers/{created['id']}").status_code == 404
    assert events("provider.delete")[0].changes == {"bootstrap removal": "left in the cluster (removal was not asked for)"}


def test_cordon_and_uncordon(api, make_provider):
    provider = make_provider("east")
    response = api("POST", f"/providers/{provider.id}/cordon", json={"reason": "upgrade"})
    assert response.status_code == 200 and response.json["cordoned"] and response.json["cordon_reason"] == "upgrade"
    assert api("POST", f"/providers/{provider.id}/cordon", json={"reason": ""}).status_code == 422
    assert api("POST", f"/providers/{provider.id}/uncordon").json["cordoned"] is False
    assert api("POST", f"/providers/{provider.id}/uncordon").status_code == 200
    actions = db.session.scalars(db.select(AuditEvent.action).filter(AuditEvent.target_type == "provider")
                                 .order_by(AuditEvent.id)).all()
    assert actions == ["provider.cordon", "provider.uncordon"]


def test_list_filters_and_pages(api, make_provider, make_org):
    orgs = {o.name: o for o in db.session.scalars(db.select(Organization))}
    for index, name in enumerate(["delta", "alpha", "echo", "charlie", "bravo"]):
        make_provider(name, organizations=[orgs["Acme"]] if index % 2 == 0 else [orgs["Globex"]],
                      status="ready" if name in ("alpha", "echo") else "error", cordoned=name == "bravo")
    names, cursor = [], None
    while True:
        page = api("GET", "/providers", query_string={"limit": 2, **({"cursor": cursor} if cursor else {})}).json
        names += [p["name"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert names == ["delta", "alpha", "echo", "charlie", "bravo"]  # in the order they were registered
    pick = lambda **q: [p["name"] for p in api("GET", "/providers", query_string=q).json["items"]]  # noqa: E731
    assert pick(status="ready") == ["alpha", "echo"]
    assert pick(organization="globex") == ["alpha", "charlie"]
    assert pick(name="LT") == ["delta"] and pick(name="%") == []
    assert pick(cordoned="true") == ["bravo"]
    bad = api("GET", "/providers", query_string={"cursor": "nonsense"})
    assert bad.status_code == 422 and bad.json["errors"][0]["pointer"] == "#/query/cursor"
    assert pick(cursor=10**6) == []


def test_members_and_read_only_tokens_are_refused(app, actions, manager, make_provider):
    provider = make_provider("east")
    member = actions.user(Role.MEMBER.value, username="dev")
    _, member_secret = tokens.create(member, "m", 30, read_only=False)
    _, reader_secret = tokens.create(manager, "r", 30, read_only=True)
    client = app.test_client()
    assert call(client, "GET", "/providers", member_secret).status_code == 403
    assert call(client, "GET", f"/providers/{provider.id}", reader_secret).status_code == 200
    response = call(client, "POST", f"/providers/{provider.id}/cordon", reader_secret, json={"reason": "x"})
    assert response.status_code == 403 and response.json["title"] == "Read-only token"


def test_a_providers_version_etag_never_answers_304_as_its_status_moves_without_it(api, kube_api_tls):
    created = api("POST", "/providers", json=body_for(kube_api_tls)).json
    url = f"/providers/{created['id']}"
    read = api("GET", url)
    assert read.headers["ETag"] == f'"{created["version"]}"'
    assert api("GET", url, headers={"If-None-Match": read.headers["ETag"]}).status_code == 200
    listed = api("GET", "/providers")
    assert listed.headers["ETag"].startswith('W/"')
    assert api("GET", "/providers", headers={"If-None-Match": listed.headers["ETag"]}).status_code == 304
