"""How to reach a cluster: the Connection value, kubeconfig parsing, JWT expiry, in-cluster.

Everything here is pure: no network, no Kubernetes client. The app stores the fields of a
Connection (credentials encrypted) and rebuilds one for every call into this package.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import os
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import yaml

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
FLATTEN_HINT = "export it with `kubectl config view --raw --flatten --minify`"
CREDENTIALS_HINT = "use a service account token or a client certificate"


# Addresses a token must never be sent to unless ALLOW_LINK_LOCAL_CLUSTERS says so: link-local
# networks (where clouds answer instance metadata, credentials included) and the metadata
# services' other well-known addresses.
LINK_LOCAL_NETWORKS = ("169.254.0.0/16", "fe80::/10")
METADATA_NETWORKS = (
    "100.100.100.200/32",  # Alibaba Cloud
    "192.0.0.192/32",  # Oracle Cloud Classic
    "fd00:ec2::254/128",  # AWS over IPv6
    "fd00:ec2::23/128",  # AWS time sync and DNS
)
BLOCKED_NETWORKS = LINK_LOCAL_NETWORKS + METADATA_NETWORKS
METADATA_NAMES = frozenset({
    "metadata", "metadata.google.internal", "metadata.goog", "instance-data",
    "instance-data.ec2.internal", "metadata.azure.internal", "metadata.tencentyun.com",
})
SETTING = "ALLOW_LINK_LOCAL_CLUSTERS"
_NUMERIC_HOST = re.compile(r"^[0-9a-fx.]+$", re.I)


class AddressError(ValueError):
    """A cluster address that credentials may not be sent to; the message says why."""


@dataclass(frozen=True)
class Connection:
    """Everything needed to talk to one cluster's API server (PEM strings, not files)."""

    server: str
    namespace: str
    ca_cert: str | None = None
    token: str | None = field(default=None, repr=False)
    client_cert: str | None = None
    client_key: str | None = field(default=None, repr=False)
    in_cluster: bool = False
    # Peers the client refuses to send a request to, checked on every new connection (a
    # name may resolve to a metadata address): CIDR strings, () when the setting allows them.
    blocked_networks: tuple[str, ...] = BLOCKED_NETWORKS

    def fingerprint(self) -> str:
        """A hash of every field, secrets included: equal connections share a client."""
        parts = [self.server, self.namespace, self.ca_cert, self.token,
                 self.client_cert, self.client_key, str(self.in_cluster),
                 list(self.blocked_networks)]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


class KubeconfigError(ValueError):
    """A pasted kubeconfig cannot be used; the message is shown to the admin as is."""


def check_address(address: str, *, allow_link_local: bool = False,
                  what: str = "The cluster address") -> str:
    """The address credentials may be sent to, without a trailing slash; else AddressError.

    One rule for a form's cluster address and a kubeconfig's server: https only, no user
    name, query or fragment (a path is fine: API servers behind a prefix), a valid host and
    port, and no link-local or cloud metadata host unless `allow_link_local`.
    """
    value = (address or "").strip()
    if any(c.isspace() or not c.isprintable() or c == "\\" for c in value):
        raise AddressError(f"{what} has spaces, control characters or a backslash in it.")
    try:
        parts = urlsplit(value)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise AddressError(
            f"{what} is not a valid URL: check the host (an IPv6 address goes in [brackets]) "
            "and the port (a number from 1 to 65535).") from None
    if parts.scheme.lower() == "http":
        raise AddressError(f"{what} is http://: the token would travel in clear. "
                           "Use the API server's https:// address.")
    if parts.scheme.lower() != "https" or not host:
        raise AddressError(f"{what} must be an https URL, e.g. https://k8s.example.com:6443")
    if "@" in parts.netloc:
        raise AddressError(f"{what} must not carry a user name or password (user@host): "
                           "credentials go in the token or the kubeconfig's user.")
    if parts.query or "?" in value or parts.fragment or "#" in value:
        raise AddressError(f"{what} must not have a query (?...) or a fragment (#...).")
    if port == 0:
        raise AddressError(f"{what} has port 0: use the API server's port, e.g. 6443.")
    refusal = host_refusal(host, () if allow_link_local else BLOCKED_NETWORKS)
    if refusal and refusal.startswith("the unspecified"):
        raise AddressError(f"{what} is {refusal}, which no cluster can be reached at.")
    if refusal:
        raise AddressError(f"{what} points to {refusal}, where credentials must not go "
                           f"unless the {SETTING} setting allows it. Use the cluster's own address.")
    return value.rstrip("/")


def host_refusal(host: str, blocked: Iterable[str]) -> str | None:
    """Why credentials may not go to `host` (a name or a literal address), or None.

    Only what the host says literally: a name's addresses are checked when connecting.
    """
    name = host.lower().rstrip(".")
    ip = _literal_ip(name)
    if ip is None:
        if name in METADATA_NAMES and tuple(blocked):
            return f"a cloud metadata service ({name})"
        return None
    if ip.is_unspecified:
        return f"the unspecified address {ip} (\"this host\")"
    return peer_refusal(ip, blocked)


def peer_refusal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
                 blocked: Iterable[str]) -> str | None:
    """Why credentials may not go to the address `ip`, or None when it is not `blocked`."""
    mapped = getattr(ip, "ipv4_mapped", None)
    ip = mapped or ip
    if not any(ip in ipaddress.ip_network(net) for net in blocked):
        return None
    if ip == ipaddress.ip_address("169.254.169.254") or any(
            ip in ipaddress.ip_network(net) for net in METADATA_NETWORKS):
        return f"a cloud metadata address ({ip})"
    if ip.is_link_local:
        return f"a link-local address ({ip})"
    return f"a blocked address ({ip})"


def _literal_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        pass
    if _NUMERIC_HOST.match(host):  # 2852039166, 0xa9fea9fe, 169.254.43518: IPv4 all the same
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            pass
    return None


class NotInClusterError(RuntimeError):
    """The app is not running inside Kubernetes (no service account mounted)."""


def kubeconfig_contexts(text: str) -> list[str]:
    """The context names of a kubeconfig, in file order (for a picker)."""
    return [c["name"] for c in _named_list(_load(text), "contexts")]


def parse_kubeconfig(text: str, context: str | None = None, *,
                     allow_link_local: bool = False) -> tuple[Connection, list[str]]:
    """Resolve one context of a pasted kubeconfig into a Connection.

    Returns ``(connection, contexts)``: ``contexts`` lists every context name in the file
    so a form can offer them. ``connection.namespace`` is the context's namespace, or ""
    when the context sets none (the caller fills in its own). ``context=None`` picks the
    current-context, or the only context. The server must pass `check_address`. Raises
    KubeconfigError with a message that says what is wrong and how to fix it.
    """
    config = _load(text)
    contexts = _named_list(config, "contexts")
    names = [c["name"] for c in contexts]
    if not names:
        for user in _named_list(config, "users"):
            _reject_plugins(user)  # the more useful error when a context is missing too
        raise KubeconfigError(
            "The kubeconfig has no contexts. Paste the whole file; " + FLATTEN_HINT + "."
        )
    wanted = context or config.get("current-context") or (names[0] if len(names) == 1 else None)
    if not wanted:
        raise KubeconfigError(
            f"The kubeconfig has no current-context; pick one of: {', '.join(names)}."
        )
    ctx = _find(contexts, wanted, "context", available=names)
    ctx_body = ctx.get("context") or {}
    cluster = _find(_named_list(config, "clusters"), ctx_body.get("cluster"), "cluster")
    user = _find(_named_list(config, "users"), ctx_body.get("user"), "user")
    server, ca_cert = _cluster_fields(cluster, allow_link_local)
    token, client_cert, client_key = _user_fields(user)
    conn = Connection(
        server=server,
        namespace=str(ctx_body.get("namespace") or ""),
        ca_cert=ca_cert,
        token=token,
        client_cert=client_cert,
        client_key=client_key,
    )
    return conn, names


def token_expiry_phrase(expires_at: datetime, now: datetime | None = None) -> str:
    """How soon a token expires, in whole days: "expires in less than a day", "expires in
    3 days", "expired 2 days ago". The one wording of the check's warning and the pages."""
    left = expires_at - (now or datetime.now(timezone.utc))
    days = abs(left) // timedelta(days=1)
    count = f"{days} day{'s' if days != 1 else ''}" if days else "less than a day"
    return f"expires in {count}" if left > timedelta(0) else f"expired {count} ago"


def token_expiry(token: str | None) -> datetime | None:
    """The `exp` claim of a JWT as an aware UTC datetime; None for anything else.

    The signature is not checked: this only predicts when the cluster will reject it.
    """
    parts = (token or "").strip().split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        exp = payload["exp"]
        if isinstance(exp, bool) or not isinstance(exp, (int, float)):
            return None
        return datetime.fromtimestamp(exp, tz=timezone.utc)
    except (ValueError, TypeError, KeyError, OverflowError, OSError, binascii.Error):
        return None


def in_cluster_connection(
    namespace: str | None = None,
    *,
    sa_dir: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Connection:
    """A Connection with the pod's own service account (call it per use: tokens rotate).

    ``namespace`` defaults to the pod's namespace. Raises NotInClusterError when the
    service account or the KUBERNETES_SERVICE_HOST/PORT variables are missing.
    """
    sa_dir = sa_dir or SERVICE_ACCOUNT_DIR
    environ = os.environ if environ is None else environ
    host = environ.get("KUBERNETES_SERVICE_HOST")
    port = environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise NotInClusterError(
            "Not running inside Kubernetes: KUBERNETES_SERVICE_HOST and "
            "KUBERNETES_SERVICE_PORT are not set."
        )
    try:
        token = _read(os.path.join(sa_dir, "token"))
        ca_cert = _read(os.path.join(sa_dir, "ca.crt"))
        own_namespace = _read(os.path.join(sa_dir, "namespace"))
    except OSError as exc:
        raise NotInClusterError(
            f"Not running inside Kubernetes with a service account: cannot read "
            f"{exc.filename} ({exc.strerror})."
        ) from None
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    return Connection(
        server=f"https://{host}:{port}",
        namespace=namespace or own_namespace.strip(),
        ca_cert=ca_cert,
        token=token.strip(),
        in_cluster=True,
    )


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def _load(text: str) -> dict:
    try:
        config = yaml.safe_load(text or "")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise KubeconfigError(f"The kubeconfig is not valid YAML{where}: {problem}.") from None
    if not isinstance(config, dict) or not any(
        config.get(key) for key in ("contexts", "clusters", "users")
    ):
        raise KubeconfigError(
            "This does not look like a kubeconfig: it has no contexts. Paste the whole file; "
            + FLATTEN_HINT + "."
        )
    return config


def _named_list(config: dict, key: str) -> list[dict]:
    items = config.get(key) or []
    if not isinstance(items, list) or not all(
        isinstance(i, dict) and isinstance(i.get("name"), str) for i in items
    ):
        raise KubeconfigError(f"The kubeconfig's '{key}' must be a list of named entries.")
    return items


def _find(items: list[dict], name: object, what: str, available: list[str] | None = None) -> dict:
    for item in items:
        if item["name"] == name:
            return item
    if available is not None:
        raise KubeconfigError(
            f"The kubeconfig has no context '{name}'. Available contexts: "
            f"{', '.join(available) or '(none)'}."
        )
    raise KubeconfigError(f"The kubeconfig refers to a {what} '{name}' that it does not define.")


def _cluster_fields(cluster: dict, allow_link_local: bool) -> tuple[str, str | None]:
    name, body = cluster["name"], cluster.get("cluster") or {}
    if body.get("insecure-skip-tls-verify"):
        raise KubeconfigError(
            f"Cluster '{name}' sets insecure-skip-tls-verify, which Provider Admin refuses: "
            "the token would be sent to whoever answers. Remove it and add the cluster's "
            "CA certificate (certificate-authority-data)."
        )
    if body.get("certificate-authority") and not body.get("certificate-authority-data"):
        _file_error("cluster", name, "certificate-authority", body["certificate-authority"])
    server = str(body.get("server") or "").strip()
    if not server:
        raise KubeconfigError(f"Cluster '{name}' has no https:// server address.")
    try:
        server = check_address(server, allow_link_local=allow_link_local,
                               what=f"The server of cluster '{name}'")
    except AddressError as exc:
        raise KubeconfigError(str(exc)) from None
    ca = body.get("certificate-authority-data")
    return server, (_pem(ca, f"cluster '{name}'", "certificate-authority-data")
                                if ca else None)


def _reject_plugins(user: dict) -> None:
    name, body = user["name"], user.get("user") or {}
    if body.get("exec"):
        command = (body["exec"] or {}).get("command") or "unknown command"
        raise KubeconfigError(
            f"User '{name}' uses an exec plugin ({command}) which is not supported; "
            f"{CREDENTIALS_HINT}."
        )
    if body.get("auth-provider"):
        provider = (body["auth-provider"] or {}).get("name") or "unknown"
        raise KubeconfigError(
            f"User '{name}' uses an auth-provider plugin ({provider}) which is not supported; "
            f"{CREDENTIALS_HINT}."
        )


def _user_fields(user: dict) -> tuple[str | None, str | None, str | None]:
    _reject_plugins(user)
    name, body = user["name"], user.get("user") or {}
    embedded = {"tokenFile": "token", "client-certificate": "client-certificate-data",
                "client-key": "client-key-data"}
    for key, inline in embedded.items():
        if body.get(key) and not body.get(inline):
            _file_error("user", name, key, body[key])
    token = str(body.get("token") or "").strip() or None
    cert, key = body.get("client-certificate-data"), body.get("client-key-data")
    if bool(cert) != bool(key):
        raise KubeconfigError(
            f"User '{name}' has only one of client-certificate-data and client-key-data; "
            "a client certificate needs both."
        )
    if token is None and not cert:
        what = "a username and password" if body.get("username") else "no credentials"
        raise KubeconfigError(f"User '{name}' has {what}; {CREDENTIALS_HINT}.")
    where = f"user '{name}'"
    return (token,
            _pem(cert, where, "client-certificate-data") if cert else None,
            _pem(key, where, "client-key-data") if key else None)


def _file_error(kind: str, name: str, key: str, path: object) -> None:
    raise KubeconfigError(
        f"The {kind} '{name}' refers to the file {path} ({key}), which cannot be read from a "
        f"pasted kubeconfig. Embed the contents instead: {FLATTEN_HINT}."
    )


def _pem(data: object, where: str, key: str) -> str:
    try:
        text = base64.b64decode("".join(str(data).split()), validate=True).decode("ascii")
    except (binascii.Error, ValueError):
        raise KubeconfigError(f"The {key} of {where} is not valid base64.") from None
    if "-----BEGIN " not in text:
        raise KubeconfigError(f"The {key} of {where} is not a PEM certificate or key.")
    return text
