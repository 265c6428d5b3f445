"""How to reach a cluster: the Connection value, kubeconfig parsing, JWT expiry, in-cluster.

Everything here is pure: no network, no Kubernetes client. The app stores the fields of a
Connection (credentials encrypted) and rebuilds one for every call into this package.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import yaml

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
FLATTEN_HINT = "export it with `kubectl config view --raw --flatten --minify`"
CREDENTIALS_HINT = "use a service account token or a client certificate"


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

    def fingerprint(self) -> str:
        """A hash of every field, secrets included: equal connections share a client."""
        parts = [self.server, self.namespace, self.ca_cert, self.token,
                 self.client_cert, self.client_key, str(self.in_cluster)]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


class KubeconfigError(ValueError):
    """A pasted kubeconfig cannot be used; the message is shown to the admin as is."""


class NotInClusterError(RuntimeError):
    """The app is not running inside Kubernetes (no service account mounted)."""


def kubeconfig_contexts(text: str) -> list[str]:
    """The context names of a kubeconfig, in file order (for a picker)."""
    return [c["name"] for c in _named_list(_load(text), "contexts")]


def parse_kubeconfig(text: str, context: str | None = None) -> tuple[Connection, list[str]]:
    """Resolve one context of a pasted kubeconfig into a Connection.

    Returns ``(connection, contexts)``: ``contexts`` lists every context name in the file
    so a form can offer them. ``connection.namespace`` is the context's namespace, or ""
    when the context sets none (the caller fills in its own). ``context=None`` picks the
    current-context, or the only context. Raises KubeconfigError with a message that says
    what is wrong and how to fix it.
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
    server, ca_cert = _cluster_fields(cluster)
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


def _cluster_fields(cluster: dict) -> tuple[str, str | None]:
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
    if not server.startswith(("https://", "http://")):
        raise KubeconfigError(f"Cluster '{name}' has no https:// server address.")
    ca = body.get("certificate-authority-data")
    return server.rstrip("/"), (_pem(ca, f"cluster '{name}'", "certificate-authority-data")
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
