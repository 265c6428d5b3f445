"""Credentials follow the address (SPEC §8): stored credentials only ever go to the address
they were entered for, over https, never to link-local or metadata addresses, and what a
cluster answers is quoted as a short escaped excerpt. Every cluster here is the emulator
over real HTTP(S)."""
import base64
import json
import re

import pytest
import sqlalchemy as sa
import yaml

from provider_admin import crypto, kube
from provider_admin.checks import check_now
from provider_admin.extensions import db
from provider_admin.kube import errors
from provider_admin.kube.client import MAX_RESPONSE_BYTES
from provider_admin.models import AuditEvent, Provider

from .conftest import field_error
from .kube import TOKEN, KubeAPI, provider_uid

SECRET_KEY_TEXT = "kubeconfig-secret-token-4711"


@pytest.fixture
def manager(actions):
    return actions.login("manager")


@pytest.fixture
def other_tls():
    """A second API server, the one a hostile manager controls."""
    with KubeAPI(tls=True) as api:
        yield api


def edit_form(provider, **overrides):
    data = {"name": provider.name, "cluster_address": provider.cluster_address,
            "namespace": provider.namespace, "ca_certificate": provider.ca_cert or "",
            "kubeconfig_context": provider.kubeconfig_context or "", "token": "",
            "pod_tolerations": "", "pod_node_selector": "", "service_account_annotations": "",
            "affinity": "", "version": str(provider.version)}
    data.update(overrides)
    return data


def kubeconfig(server, ca_pem=None, token=SECRET_KEY_TEXT, contexts=("main",)):
    cluster = {"server": server}
    if ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem.encode()).decode()
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": contexts[0],
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": "c", "user": "u"}} for name in contexts],
    })


def authorizations(api) -> list[str]:
    return [h.get("Authorization") for h in api.request_headers() if h.get("Authorization")]


def stored_secret(provider) -> dict:
    db.session.refresh(provider)
    return json.loads(crypto.decrypt(provider.credentials_encrypted) or "{}")


def edit(actions, provider, **overrides):
    return actions.post(f"/manage/providers/{provider.id}/edit", edit_form(provider, **overrides),
                        htmx=True)


# The attack and its neighbours ----------------------------------------------------------------

def test_moving_a_provider_to_another_server_without_its_token_is_refused(
        manager, actions, kube_api_tls, other_tls, kube_provider):
    provider = kube_provider(kube_api_tls)
    before = (provider.cluster_address, provider.ca_cert, provider.version)
    response = edit(actions, provider, cluster_address=other_tls.url, ca_certificate=other_tls.ca_pem)
    assert response.status_code == 422
    assert field_error(response.text, "token").startswith(
        "The cluster address and CA certificate changed: enter the service account token again")
    assert "Nothing was saved" in response.text
    db.session.refresh(provider)
    assert (provider.cluster_address, provider.ca_cert, provider.version) == before
    assert stored_secret(provider) == {"token": TOKEN}
    assert authorizations(other_tls) == []
    assert db.session.scalar(sa.select(AuditEvent).filter_by(action="provider.update")) is None


def test_with_the_token_entered_again_the_move_saves_and_checks_with_the_new_token_only(
        manager, actions, kube_api_tls, other_tls, kube_provider):
    provider = kube_provider(kube_api_tls)
    response = edit(actions, provider, cluster_address=other_tls.url + "/",
                    ca_certificate=other_tls.ca_pem, token="the-other-token")
    assert response.status_code == 200, field_error(response.text, "token")
    db.session.refresh(provider)
    assert provider.cluster_address == other_tls.url  # normalized: no trailing slash
    assert stored_secret(provider) == {"token": "the-other-token"}
    seen = authorizations(other_tls)
    assert seen and set(seen) == {"Bearer the-other-token"}


@pytest.mark.parametrize("change, message", [
    ("address", "The cluster address changed: enter the service account token again"),
    ("ca", "The CA certificate changed: enter the service account token again"),
])
def test_each_part_of_the_connection_alone_needs_the_token(manager, actions, kube_api_tls,
                                                           other_tls, kube_provider, change, message):
    provider = kube_provider(kube_api_tls)
    new = {"address": {"cluster_address": "https://k8s.example.com:6443"},
           "ca": {"ca_certificate": other_tls.ca_pem}}[change]
    response = edit(actions, provider, **new)
    assert response.status_code == 422
    assert field_error(response.text, "token").startswith(message)
    assert "only sent to the address they were entered for" in field_error(response.text, "token")
    db.session.refresh(provider)
    assert provider.version == 1


def test_a_changed_kubeconfig_context_needs_the_kubeconfig_again(manager, actions, kube_api_tls,
                                                                 kube_provider):
    provider = kube_provider(kube_api_tls, kubeconfig_context="main")
    response = edit(actions, provider, kubeconfig_context="staging")
    assert response.status_code == 422
    assert field_error(response.text, "token").startswith(
        "The kubeconfig context changed: paste the kubeconfig again")
    db.session.refresh(provider)
    assert provider.kubeconfig_context == "main" and provider.version == 1


def test_a_client_certificate_provider_is_told_to_paste_its_kubeconfig(manager, actions,
                                                                       kube_api_tls, kube_provider):
    provider = kube_provider(kube_api_tls)
    provider.credentials_kind = "client_cert"
    db.session.commit()
    response = edit(actions, provider, cluster_address="https://k8s.example.com")
    assert field_error(response.text, "token").startswith(
        "The cluster address changed: paste the kubeconfig again")


def test_switching_to_a_kubeconfig_sends_only_its_own_credentials(manager, actions, kube_api_tls,
                                                                  other_tls, kube_provider):
    provider = kube_provider(kube_api_tls)
    text = kubeconfig(other_tls.url, other_tls.ca_pem, token="kubeconfig-token")
    response = edit(actions, provider, cluster_address="", kubeconfig=text)
    assert response.status_code == 200, field_error(response.text, "kubeconfig")
    db.session.refresh(provider)
    assert (provider.cluster_address, provider.kubeconfig_context) == (other_tls.url, None)
    assert stored_secret(provider) == {"token": "kubeconfig-token"}
    seen = authorizations(other_tls)
    assert seen and set(seen) == {"Bearer kubeconfig-token"}


def test_saving_an_unchanged_form_never_asks_for_the_token(manager, actions, client, kube_api_tls,
                                                           kube_provider):
    provider = kube_provider(kube_api_tls, kubeconfig_context="main")
    page = client.get(f"/manage/providers/{provider.id}/edit").text
    assert "only sent to the address they were entered for" in page
    assert 'value="main"' in page  # the context is shown, so saving it back is no change
    spelled_otherwise = {
        "cluster_address": f"  {provider.cluster_address.replace('https', 'HTTPS')}/ ",
        "ca_certificate": "\r\n\r\n" + provider.ca_cert.replace("\n", "\r\n  ") + "\n\n",
        "kubeconfig_context": " main ", "storage_class": "gold",
    }
    response = edit(actions, provider, **spelled_otherwise)
    assert response.status_code == 200, field_error(response.text, "token")
    db.session.refresh(provider)
    assert provider.storage_class == "gold"
    assert stored_secret(provider) == {"token": TOKEN}


def test_the_builtin_provider_has_no_connection_to_change(manager, actions, make_provider):
    provider = make_provider("builtin", cluster_address=None, is_builtin=True)
    response = edit(actions, provider, cluster_address="https://evil.example.com",
                    storage_class="gold")
    assert response.status_code == 200
    db.session.refresh(provider)
    assert (provider.cluster_address, provider.storage_class) == (None, "gold")


def test_the_service_never_keeps_credentials_for_a_moved_address(app, kube_api_tls, kube_provider):
    """Should a caller skip the form's check, the credentials stay behind, not go along."""
    from provider_admin.providers import service
    from provider_admin.providers.forms import ProviderForm

    provider = kube_provider(kube_api_tls)
    with app.test_request_context(method="POST", data=edit_form(
            provider, cluster_address="https://k8s.example.com")):
        form = ProviderForm(provider=provider)
        form.organizations.choices = []
        form.validate()  # the token error is ignored on purpose
        changes = service.apply(provider, form)
    assert not provider.has_credentials
    assert changes["credentials"] == "(removed: the connection changed)"


# What an address may be -----------------------------------------------------------------------

@pytest.mark.parametrize("address, message", [
    ("https://user:secret@k8s.example.com", "must not carry a user name or password"),
    ("https://token@k8s.example.com", "must not carry a user name or password"),
    ("https://k8s.example.com/?x=1", "must not have a query"),
    ("https://k8s.example.com/#api", "or a fragment"),
    ("https://[::1", "not a valid URL"),
    ("https://k8s.example.com:99999", "not a valid URL"),
    ("https://k8s.example.com:port", "not a valid URL"),
    ("https://k8s.example.com:0", "port 0"),
    ("https://k8s.exa mple.com", "spaces"),
    ("ftp://k8s.example.com", "must be an https URL"),
    ("https://0.0.0.0:6443", "unspecified address"),
    ("https://[::]:6443", "unspecified address"),
])
def test_an_address_that_cannot_carry_credentials_is_refused_at_its_field(
        manager, actions, make_provider, address, message):
    provider = make_provider("east", credentials_encrypted=crypto.encrypt('{"token": "t"}'))
    response = edit(actions, provider, cluster_address=address, token="new-token")
    assert response.status_code == 422
    assert message in field_error(response.text, "cluster_address"), response.text
    db.session.refresh(provider)
    assert (provider.cluster_address, provider.version) == ("https://k8s.invalid:6443", 1)


def test_an_api_server_behind_a_path_prefix_is_fine(manager, actions):
    response = actions.post("/manage/providers/new", {
        "name": "prefixed", "cluster_address": "https://gw.example.com/k8s/clusters/c-1/",
        "namespace": "ws", "token": "t", "pod_tolerations": "", "pod_node_selector": "",
        "service_account_annotations": "", "affinity": ""})
    assert response.status_code == 303
    assert db.session.scalar(sa.select(Provider.cluster_address)) == \
        "https://gw.example.com/k8s/clusters/c-1"


METADATA = [
    "https://169.254.169.254", "https://169.254.1.1:6443", "https://[fe80::1]:6443",
    "https://[fd00:ec2::254]", "https://100.100.100.200", "https://metadata.google.internal",
    "https://metadata.goog.", "https://2852039166", "https://0xa9fea9fe",
    "https://[::ffff:169.254.169.254]",
]


@pytest.mark.parametrize("address", METADATA)
def test_link_local_and_metadata_addresses_are_refused(manager, actions, make_provider, address):
    provider = make_provider("east", credentials_encrypted=crypto.encrypt('{"token": "t"}'))
    response = edit(actions, provider, cluster_address=address, token="new-token")
    assert response.status_code == 422
    error = field_error(response.text, "cluster_address")
    assert re.search(r"points to a (link-local address|cloud metadata (address|service))", error)
    assert "ALLOW_LINK_LOCAL_CLUSTERS" in error
    db.session.refresh(provider)
    assert provider.version == 1


@pytest.mark.parametrize("address", ["https://169.254.169.254", "https://metadata.google.internal"])
def test_a_kubeconfig_cannot_point_at_metadata_either(manager, actions, address):
    response = actions.post("/manage/providers/new", {
        "name": "east", "namespace": "ws", "kubeconfig": kubeconfig(address),
        "pod_tolerations": "", "pod_node_selector": "", "service_account_annotations": "",
        "affinity": ""}, htmx=True)
    assert response.status_code == 422
    assert "cloud metadata" in field_error(response.text, "kubeconfig")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Provider)) == 0


class TestTheSettingAllowsLinkLocal:
    @pytest.fixture
    def app_config(self):
        return {"ALLOW_LINK_LOCAL_CLUSTERS": True, "CHECK_TIMEOUT": 0.3}

    @pytest.mark.parametrize("address", ["https://169.254.169.254",
                                         "https://metadata.google.internal"])
    def test_then_they_are_accepted(self, manager, actions, make_provider, address):
        provider = make_provider("east", credentials_encrypted=crypto.encrypt('{"token": "t"}'))
        response = edit(actions, provider, cluster_address=address, token="new-token")
        assert response.status_code == 200, field_error(response.text, "cluster_address")
        db.session.refresh(provider)
        assert provider.cluster_address == address

    def test_but_never_http_or_the_unspecified_address(self, manager, actions, make_provider):
        provider = make_provider("east", credentials_encrypted=crypto.encrypt('{"token": "t"}'))
        for address in ("http://169.254.169.254", "https://0.0.0.0"):
            response = edit(actions, provider, cluster_address=address, token="new-token")
            assert response.status_code == 422

    def test_and_the_connections_do_not_block_them(self, app, make_provider):
        from provider_admin.providers.connection import connection_for

        provider = make_provider("east", credentials_encrypted=crypto.encrypt('{"token": "t"}'))
        assert connection_for(provider).blocked_networks == ()


def test_the_setting_defaults_to_off(app):
    assert app.config["ALLOW_LINK_LOCAL_CLUSTERS"] is False


def test_a_kubeconfig_with_an_http_server_is_refused(manager, actions, kube_api):
    response = actions.post("/manage/providers/new", {
        "name": "east", "namespace": "ws", "kubeconfig": kubeconfig(kube_api.url),
        "pod_tolerations": "", "pod_node_selector": "", "service_account_annotations": "",
        "affinity": ""}, htmx=True)
    assert response.status_code == 422
    assert "the token would travel in clear" in field_error(response.text, "kubeconfig")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Provider)) == 0
    assert kube_api.requests == []


@pytest.mark.parametrize("server, message", [
    ("https://u:p@k8s.example.com", "user name or password"),
    ("https://k8s.example.com?token=x", "query"),
    ("https://[::1", "not a valid URL"),
])
def test_a_kubeconfig_server_follows_the_same_rule(server, message):
    with pytest.raises(kube.KubeconfigError, match=message):
        kube.parse_kubeconfig(kubeconfig(server))


# At connect time ------------------------------------------------------------------------------

def test_a_blocked_peer_gets_no_request_at_all(kube_api):
    """A name may resolve to a metadata address: the client checks the address it reached."""
    conn = kube_api.connection(server=kube_api.url.replace("127.0.0.1", "localhost"),
                               blocked_networks=("127.0.0.0/8", "::1/128"))
    result = kube.check(conn, provider_name="east", storage_class=None, service_account=None,
                        needs_service_accounts=False, full=True, timeout=2)
    assert result.category == "address_refused"
    assert result.message.startswith("localhost resolves to a blocked address (")
    assert "sent nothing" in result.message and "Traceback" not in result.message
    assert kube_api.requests == []


def test_a_blocked_peer_over_tls_gets_no_request_either(kube_api_tls):
    conn = kube_api_tls.connection(blocked_networks=("127.0.0.0/8",))
    uid = "0" * 32
    outcomes = kube.deploy(conn, kube.bootstrap_manifest(provider_name="east", namespace="ws", provider_uid=uid),
                           provider_uid=uid, provider_name="east", timeout=2)
    assert "resolves to a blocked address (127.0.0.1)" in kube.describe(outcomes)
    assert not kube.succeeded(outcomes)
    assert kube.storage_classes(conn, 2).error.startswith("127.0.0.1 resolves to")
    assert kube_api_tls.requests == []


def test_check_now_shows_the_refusal_and_the_cluster_receives_no_token(
        app, actions, kube_api, kube_provider, monkeypatch):
    actions.login()
    monkeypatch.setattr(kube, "BLOCKED_NETWORKS", ("127.0.0.0/8",))  # as if it were metadata
    provider = kube_provider(kube_api)
    row = actions.post(f"/manage/providers/{provider.id}/check", htmx=True)
    assert row.status_code == 200
    assert "resolves to a blocked address (127.0.0.1)" in row.text
    assert kube_api.requests == []


def test_an_allowed_peer_is_reached_as_before(kube_api):
    conn = kube_api.connection(blocked_networks=kube.BLOCKED_NETWORKS)
    kube_api.deploy_marker("east")
    result = kube.check(conn, provider_name="east", provider_uid=provider_uid("east"), storage_class=None,
                        service_account=None, needs_service_accounts=False, full=False, timeout=2)
    assert result.ok, result.message


def test_a_redirect_is_not_followed_and_carries_no_token_elsewhere(kube_api):
    with KubeAPI() as elsewhere:
        kube_api.redirect("get /version", elsewhere.url + "/version")
        result = kube.check(kube_api.connection(), provider_name="east", storage_class=None,
                            service_account=None, needs_service_accounts=False, full=False,
                            timeout=2)
        assert not result.ok
        assert result.category == "redirected"
        assert f"answered with a redirect (302) to {elsewhere.url}/version" in result.message
        assert elsewhere.requests == []
    assert authorizations(kube_api) == [f"Bearer {TOKEN}"]


# What is quoted from a cluster ----------------------------------------------------------------

def test_an_excerpt_is_one_short_line_without_control_characters():
    text = "first\r\nsecond\x1b[2J\x00\u202eevil\t" + "x" * 10_000
    excerpt = errors.snippet(text)
    assert len(excerpt) <= errors.SNIPPET_LENGTH <= 160
    assert excerpt.startswith("first second [2J evil x")
    assert not any(c in excerpt for c in "\r\n\x1b\x00\u202e\t")
    assert len(errors.server_message(json.dumps({"kind": "Status", "message": "m" * 5000}))) <= 160


@pytest.mark.parametrize("body", [
    b"<script>alert(1)</script>" + b"x" * 20_000,
    json.dumps({"kind": "Status", "code": 500,
                "message": "<script>alert(1)</script> " + "y" * 20_000}).encode(),
])
def test_a_hostile_answer_shows_short_and_escaped(app, actions, client, kube_api, kube_provider,
                                                   body):
    actions.login()
    provider = kube_provider(kube_api)
    kube_api.respond("get /version", 500, body=body)
    check_now(provider)
    db.session.refresh(provider)
    assert len(provider.status_message) < 400
    for page in (client.get("/manage/providers/").text,
                 client.get(f"/manage/providers/{provider.id}").text):
        assert "<script>alert" not in page
        assert "x" * 200 not in page and "y" * 200 not in page
    if b"Status" in body:
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_hints_quote_the_cluster_in_short_excerpts():
    from provider_admin.kube.hints import hints_from

    long = "z" * 5000
    nodes = [{"metadata": {"name": f"n{i}", "labels": {"topology.kubernetes.io/zone": f"{long}{i}",
                                                        "disk": long}},
              "spec": {"taints": [{"key": long, "effect": "NoSchedule"}]}} for i in range(3)]
    hints = hints_from(nodes, [{"metadata": {"name": "gold" + long}}], node_selector={"disk": "ssd"},
                       tolerations=None, storage_class="silver", affinity_stored=None)
    assert len(hints) == 2 and "z" * 200 not in "".join(hints)
    nodes[0]["metadata"]["labels"]["disk"] = "ssd"
    hints = hints_from(nodes, [{"metadata": {"name": "gold" + long}}], node_selector=None,
                       tolerations=[{"operator": "Exists"}], storage_class="gold" + long,
                       affinity_stored=None)
    assert "availability zones" in hints[0] and "z" * 200 not in hints[0]


def test_suggested_names_are_names_a_cluster_can_have(kube_api):
    for name in ("standard", "x" * 300, "two\nlines"):
        kube_api.put("storage.k8s.io/v1/storageclasses", None, name)
    assert kube.storage_classes(kube_api.connection(), 2).names == ["standard"]


def test_a_huge_answer_is_an_error_of_its_own_not_read_whole(kube_api):
    kube_api.respond("get /version", 200, body=b"{" + b" " * (MAX_RESPONSE_BYTES + 10) + b"}")
    result = kube.check(kube_api.connection(), provider_name="east", storage_class=None,
                        service_account=None, needs_service_accounts=False, full=False, timeout=5)
    assert result.category == "too_large"
    assert result.message.startswith("The API server answered with more than 4 MiB")


# A pasted kubeconfig is never sent back -------------------------------------------------------

def test_after_a_validation_error_the_kubeconfig_is_not_sent_back(manager, actions, kube_api_tls):
    response = actions.post("/manage/providers/new", {
        "name": "east", "namespace": "Not A Label",
        "kubeconfig": kubeconfig(kube_api_tls.url, kube_api_tls.ca_pem),
        "pod_tolerations": "", "pod_node_selector": "", "service_account_annotations": "",
        "affinity": ""}, htmx=True)
    assert response.status_code == 422
    assert SECRET_KEY_TEXT not in response.text
    assert base64.b64encode(kube_api_tls.ca_pem.encode()).decode()[:40] not in response.text
    assert re.search(r'<textarea[^>]*name="kubeconfig"[^>]*>\s*</textarea>', response.text)
    assert "a kubeconfig is never sent back to the browser: paste it again" in response.text


def test_after_an_edit_conflict_the_kubeconfig_is_not_sent_back(manager, actions, kube_api_tls,
                                                                kube_provider):
    provider = kube_provider(kube_api_tls)
    stale = edit_form(provider, kubeconfig=kubeconfig(kube_api_tls.url, kube_api_tls.ca_pem))
    assert edit(actions, provider, storage_class="gold").status_code == 200  # someone else saved
    response = actions.post(f"/manage/providers/{provider.id}/edit", stale, htmx=True)
    assert response.status_code == 409
    assert SECRET_KEY_TEXT not in response.text
    assert re.search(r'<textarea[^>]*name="kubeconfig"[^>]*>\s*</textarea>', response.text)
    assert "a kubeconfig is never sent back to the browser: paste it again" in response.text
    assert stored_secret(provider) == {"token": TOKEN}


def _global_ipv4() -> str | None:
    """One of this host's own non-loopback addresses (traffic to it stays on this host)."""
    import subprocess

    try:
        out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True,
                             text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", out)
    return found.group(1) if found else None


def test_a_stored_http_address_sends_nothing_off_this_host():
    """Addresses stored before only https was accepted: plain http may reach this host only
    (kubectl proxy); anywhere else the token would cross a network in clear."""
    import socket
    import threading

    address = _global_ipv4()
    if address is None:
        pytest.skip("this host has no non-loopback IPv4 address to listen on")
    received = []
    server = socket.create_server(("0.0.0.0", 0))
    port = server.getsockname()[1]

    def accept():
        server.settimeout(3)
        try:
            conn, _ = server.accept()
            conn.settimeout(1)
            received.append(conn.recv(65536))
            conn.close()
        except OSError:
            pass

    listener = threading.Thread(target=accept, daemon=True)
    listener.start()
    conn = kube.Connection(server=f"http://{address}:{port}", namespace="ws", token="stored-token")
    result = kube.check(conn, provider_name="east", storage_class=None, service_account=None,
                        needs_service_accounts=False, full=False, timeout=2)
    listener.join(timeout=5)
    server.close()
    assert not result.ok and result.category == "address_refused"
    assert "would travel in clear" in result.message
    assert all(b"stored-token" not in data for data in received)
    assert received in ([], [b""])  # connected, then closed before a byte was written
