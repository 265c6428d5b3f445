"""Pasted kubeconfigs, JWT expiry and the in-cluster connection."""
import base64
import json
from datetime import datetime, timezone

import pytest
import trustme
import yaml

from provider_admin.kube import (
    KubeconfigError,
    NotInClusterError,
    check,
    in_cluster_connection,
    kubeconfig_contexts,
    parse_kubeconfig,
    token_expiry,
)
from tests.kube import kube_api_tls, provider_uid  # noqa: F401

CA = trustme.CA()
CA_PEM = CA.cert_pem.bytes().decode()
CLIENT = CA.issue_cert("admin@example.com")
CERT_PEM = CLIENT.cert_chain_pems[0].bytes().decode()
KEY_PEM = CLIENT.private_key_pem.bytes().decode()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def kubeconfig(user: dict | None = None, cluster: dict | None = None, **top) -> str:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "prod", "cluster": cluster or {
                "server": "https://k8s.example.com:6443",
                "certificate-authority-data": b64(CA_PEM)}},
            {"name": "lab", "cluster": {"server": "https://lab.example.com/"}},
        ],
        "users": [
            {"name": "deployer", "user": {"token": "abc.def.ghi"} if user is None else user},
            {"name": "lab-admin", "user": {"client-certificate-data": b64(CERT_PEM),
                                           "client-key-data": b64(KEY_PEM)}},
        ],
        "contexts": [
            {"name": "prod", "context": {"cluster": "prod", "user": "deployer", "namespace": "ws"}},
            {"name": "lab", "context": {"cluster": "lab", "user": "lab-admin"}},
        ],
        "current-context": "prod",
    }
    config.update(top)
    return yaml.safe_dump(config)


def jwt(**claims) -> str:
    def part(data):
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2ln"


def test_current_context_with_a_token():
    conn, contexts = parse_kubeconfig(kubeconfig())

    assert contexts == ["prod", "lab"]
    assert conn.server == "https://k8s.example.com:6443"
    assert conn.namespace == "ws"
    assert conn.ca_cert == CA_PEM
    assert conn.token == "abc.def.ghi"
    assert conn.client_cert is None and conn.client_key is None
    assert "abc.def.ghi" not in repr(conn)


def test_named_context_with_a_client_certificate_and_no_namespace():
    conn, _ = parse_kubeconfig(kubeconfig(), "lab")

    assert conn.server == "https://lab.example.com"
    assert (conn.client_cert, conn.client_key) == (CERT_PEM, KEY_PEM)
    assert conn.token is None and conn.ca_cert is None
    assert conn.namespace == ""
    assert KEY_PEM not in repr(conn)


def test_only_context_is_used_without_current_context():
    text = kubeconfig(**{"current-context": None, "contexts": [
        {"name": "only", "context": {"cluster": "prod", "user": "deployer"}}]})

    assert parse_kubeconfig(text)[0].server == "https://k8s.example.com:6443"


def test_several_contexts_and_no_current_context_asks_to_pick():
    with pytest.raises(KubeconfigError, match="no current-context; pick one of: prod, lab"):
        parse_kubeconfig(kubeconfig(**{"current-context": ""}))


def test_unknown_context_lists_the_available_ones():
    with pytest.raises(KubeconfigError) as info:
        parse_kubeconfig(kubeconfig(), "staging")

    assert str(info.value) == ("The kubeconfig has no context 'staging'. "
                               "Available contexts: prod, lab.")


def test_context_names_for_a_picker():
    assert kubeconfig_contexts(kubeconfig()) == ["prod", "lab"]


def test_exec_plugin_is_rejected_naming_the_command():
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1",
                     "command": "aws", "args": ["eks", "get-token"]}}

    with pytest.raises(KubeconfigError) as info:
        parse_kubeconfig(kubeconfig(user=user))

    assert str(info.value) == (
        "User 'deployer' uses an exec plugin (aws) which is not supported; "
        "use a service account token or a client certificate.")


def test_exec_plugin_is_reported_even_without_contexts():
    user = {"name": "u", "user": {"exec": {"command": "gke-gcloud-auth-plugin"}}}
    text = yaml.safe_dump({"users": [user]})

    with pytest.raises(KubeconfigError, match=r"exec plugin \(gke-gcloud-auth-plugin\)"):
        parse_kubeconfig(text)


def test_config_without_contexts_says_so():
    text = yaml.safe_dump({"users": [{"name": "u", "user": {"token": "t"}}]})

    with pytest.raises(KubeconfigError, match="has no contexts. Paste the whole file"):
        parse_kubeconfig(text)
    assert kubeconfig_contexts(text) == []


def test_auth_provider_is_rejected():
    user = {"auth-provider": {"name": "gcp", "config": {}}}

    with pytest.raises(KubeconfigError, match=r"auth-provider plugin \(gcp\) which is not "
                                              "supported; use a service account token"):
        parse_kubeconfig(kubeconfig(user=user))


def test_insecure_skip_tls_verify_is_refused():
    cluster = {"server": "https://k8s.example.com", "insecure-skip-tls-verify": True}

    with pytest.raises(KubeconfigError, match="insecure-skip-tls-verify.*add the cluster's CA"):
        parse_kubeconfig(kubeconfig(cluster=cluster))


@pytest.mark.parametrize("section,key", [
    ("cluster", "certificate-authority"),
    ("user", "client-certificate"),
    ("user", "client-key"),
    ("user", "tokenFile"),
])
def test_file_references_cannot_be_read_from_a_pasted_config(section, key):
    cluster = {"server": "https://k8s.example.com"}
    user = {"client-certificate-data": b64(CERT_PEM), "client-key-data": b64(KEY_PEM)}
    if section == "cluster":
        cluster[key] = "/home/me/.minikube/ca.crt"
    else:
        user = {key: "/home/me/.minikube/file"}

    with pytest.raises(KubeconfigError) as info:
        parse_kubeconfig(kubeconfig(user=user, cluster=cluster))

    assert "refers to the file /home/me/.minikube/" in str(info.value)
    assert f"({key})" in str(info.value)
    assert "kubectl config view --raw --flatten --minify" in str(info.value)


@pytest.mark.parametrize("user,message", [
    ({}, "User 'deployer' has no credentials; use a service account token"),
    ({"username": "admin", "password": "x"}, "has a username and password; use a service"),
    ({"client-certificate-data": b64(CERT_PEM)}, "only one of client-certificate-data"),
    ({"client-certificate-data": "%%%", "client-key-data": b64(KEY_PEM)},
     "client-certificate-data of user 'deployer' is not valid base64"),
    ({"client-certificate-data": b64("hello"), "client-key-data": b64(KEY_PEM)},
     "is not a PEM certificate or key"),
])
def test_unusable_users(user, message):
    with pytest.raises(KubeconfigError, match=message):
        parse_kubeconfig(kubeconfig(user=user))


@pytest.mark.parametrize("text,message", [
    ("contexts:\n  - name: a\n\tcontext: {}", "not valid YAML at line 3, column 1: found "),
    ("just a string", "no contexts"),
    ("", "no contexts"),
    ("contexts: {a: 1}", "'contexts' must be a list of named entries"),
])
def test_malformed_kubeconfigs(text, message):
    with pytest.raises(KubeconfigError, match=message):
        parse_kubeconfig(text)


def test_context_referring_to_an_undefined_user():
    text = kubeconfig(contexts=[{"name": "x", "context": {"cluster": "prod", "user": "ghost"}}],
                      **{"current-context": "x"})

    with pytest.raises(KubeconfigError, match="refers to a user 'ghost' that it does not define"):
        parse_kubeconfig(text)


def test_kubeconfig_error_is_a_value_error():
    assert issubclass(KubeconfigError, ValueError)


def test_parsed_kubeconfig_connects_over_tls(kube_api_tls):
    kube_api_tls.deploy_marker("p1")
    text = kubeconfig(cluster={"server": kube_api_tls.url,
                               "certificate-authority-data": b64(kube_api_tls.ca_pem)})
    conn, _ = parse_kubeconfig(text)

    result = check(conn, provider_name="p1", provider_uid=provider_uid("p1"))

    assert result.category == "ready", result.message
    assert kube_api_tls.request_headers()[0]["Authorization"] == "Bearer abc.def.ghi"


def test_token_expiry_of_a_jwt():
    assert token_expiry(jwt(exp=1893456000)) == datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert token_expiry(jwt(exp=1893456000)).tzinfo is timezone.utc


@pytest.mark.parametrize("token", [
    None, "", "opaque-token", jwt(sub="x"), jwt(exp="tomorrow"), jwt(exp=True),
    "a.!!!.c", "a.b.c", jwt(exp=10**20),
])
def test_token_expiry_is_none_without_a_usable_exp(token):
    assert token_expiry(token) is None


def test_in_cluster_connection(tmp_path):
    (tmp_path / "token").write_text("sa-token\n")
    (tmp_path / "ca.crt").write_text(CA_PEM)
    (tmp_path / "namespace").write_text("provider-admin\n")
    environ = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}

    conn = in_cluster_connection(sa_dir=str(tmp_path), environ=environ)

    assert conn.server == "https://10.0.0.1:443"
    assert (conn.token, conn.ca_cert, conn.namespace) == ("sa-token", CA_PEM, "provider-admin")
    assert conn.in_cluster
    assert in_cluster_connection("ws", sa_dir=str(tmp_path), environ={
        "KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}).server \
        == "https://[fd00::1]:443"


def test_in_cluster_connection_outside_a_cluster(tmp_path):
    with pytest.raises(NotInClusterError, match="KUBERNETES_SERVICE_HOST"):
        in_cluster_connection(sa_dir=str(tmp_path), environ={})
    environ = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    with pytest.raises(NotInClusterError, match=f"cannot read {tmp_path}/token"):
        in_cluster_connection(sa_dir=str(tmp_path), environ=environ)
