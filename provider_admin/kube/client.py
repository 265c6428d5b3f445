"""Kubernetes API clients for Connections: no retries, explicit timeouts, cached per connection.

`send()` makes one raw request through a client; callers never see the kubernetes package.

The health check runs in a thread pool, so the cache is thread-safe; checks of the same
connection reuse its connection pool. The sweeper sizes the cache from the number of
providers (`size_client_cache`), so that every provider keeps its client between checks.
Certificates stay in memory: PEM CA data goes to the client as data, and a client
certificate is loaded into an SSLContext from a temporary file that is removed at once.

Every connection a client opens checks the address it reached before the request (and its
token) is written: a name that resolves to a link-local or metadata address is refused
(`transport.BlockedPeerError`), whatever the form was told. Redirects are never followed:
`send()` raises `Redirected`.

A timeout is a deadline for the whole exchange, not for each read: a server that trickles
its headers or body a byte at a time still ends within it. `send()` takes the time left
before a caller's `deadline` (a health check makes several requests within one), and every
read of the answer, and looking up the cluster's host name, waits at most until then (see
`transport`). A `Budget` is such a deadline for an operation that a person waits for or that
must not hang (a Deploy, a removal, a step of a workspace build): however many requests it
makes, it ends within its seconds.
"""
from __future__ import annotations

import os
import ssl
import tempfile
import threading
import time
from collections import OrderedDict
from urllib.parse import quote

import urllib3
from kubernetes import client as k8s
from urllib3.util.ssl_ import create_urllib3_context

from .connection import Connection
from .transport import DeadlineExceeded, GuardedPoolManager, request_deadline

USER_AGENT = "provider-admin"
DEFAULT_CACHE_SIZE = 64
MAX_RESPONSE_BYTES = 4 * 1024 * 1024  # an answer past this is an error, never read whole


class ClientConfigError(ValueError):
    """The connection's certificates cannot be loaded (bad PEM); the message says which."""


class ResponseTooLarge(Exception):
    """The API server answered more than MAX_RESPONSE_BYTES."""

    def __init__(self, limit: int):
        super().__init__(f"The API server answered with more than {limit // (1024 * 1024)} MiB; "
                         "the answer was not read.")


class Redirected(Exception):
    """The API server answered with a redirect, which is never followed (the credentials
    would go along); `location` is where it pointed, as sent."""

    def __init__(self, status: int, location: str | None):
        super().__init__(f"redirect {status} to {location or '(no Location)'}")
        self.status = status
        self.location = location


class Budget:
    """The time one operation (`what`, e.g. "Deploy") has for all its requests to a cluster,
    from now; each request still waits at most `timeout` within it."""

    def __init__(self, what: str, seconds: float, timeout: float):
        self.what, self.seconds, self.timeout = what, seconds, timeout
        self.deadline = time.monotonic() + seconds

    @property
    def spent(self) -> bool:
        return time.monotonic() >= self.deadline


def request_timeout(timeout: float) -> tuple[float, float]:
    """The (connect, read) pair passed as `_request_timeout` on every call."""
    return (timeout, timeout)


def quote_segment(name: str) -> str:
    """A name as one URL path segment (names come from forms and the cluster)."""
    return quote(name, safe="")


def send(api: k8s.ApiClient, method: str, path: str, *, timeout: float,
         body: dict | None = None, content_type: str | None = None,
         deadline: float | None = None) -> tuple[int, str]:
    """One request through the client (auth, TLS, no retries); returns (status, text).

    Raw rather than typed calls: no lazy import of the huge generated API modules, and a
    lenient reading of whatever the server answers. Transport failures raise, and so does a
    redirect (`Redirected`). A PATCH names its `content_type` (e.g.
    application/merge-patch+json). The request ends by `deadline` (time.monotonic()), else
    within `timeout`, and raises `DeadlineExceeded` when the time is up.
    """
    headers = {"Accept": "application/json, */*"}
    if body is not None:
        headers["Content-Type"] = content_type or "application/json"
    method, url, headers, data, _ = api.param_serialize(
        method, path, header_params=headers, body=body, auth_settings=["BearerToken"]
    )
    now = time.monotonic()
    deadline = now + timeout if deadline is None else min(deadline, now + timeout)
    left = deadline - now
    if left <= 0:
        raise DeadlineExceeded(timeout)
    request_deadline.at, request_deadline.timeout = deadline, timeout
    try:
        response = api.call_api(method, url, headers, data, _request_timeout=request_timeout(left))
        raw = response.response  # not read yet: the client asks urllib3 not to preload
        try:
            data = raw.read(MAX_RESPONSE_BYTES + 1, decode_content=True) or b""
        except BaseException:
            raw.close()
            raise
    finally:
        request_deadline.at = None
    if len(data) > MAX_RESPONSE_BYTES:
        raw.close()  # drop the connection rather than drain the rest
        raise ResponseTooLarge(MAX_RESPONSE_BYTES)
    raw.release_conn()
    if 300 <= response.status < 400:
        raise Redirected(response.status, raw.headers.get("Location"))
    return response.status, data.decode("utf-8", "replace")


def build_client(conn: Connection) -> k8s.ApiClient:
    """A new ApiClient for `conn`; prefer `get_client`, which caches."""
    config = k8s.Configuration(host=conn.server.rstrip("/"))
    # One attempt only: a dead cluster costs one timeout, not four (urllib3 retries 3x).
    config.retries = urllib3.Retry(total=0, redirect=0, raise_on_redirect=False)
    config.verify_ssl = True
    if conn.ca_cert:
        _check_pem(conn.ca_cert, "CA certificate")
        config.ca_cert_data = conn.ca_cert
    if conn.token:
        config.api_key = {"BearerToken": conn.token}
        config.api_key_prefix = {"BearerToken": "Bearer"}
    api = k8s.ApiClient(config)
    api.user_agent = USER_AGENT
    unguarded = api.rest_client.pool_manager
    api.rest_client.pool_manager = GuardedPoolManager(conn.blocked_networks,
                                                       **unguarded.connection_pool_kw)
    unguarded.clear()
    if conn.client_cert and conn.client_key:
        pool_kw = api.rest_client.pool_manager.connection_pool_kw
        pool_kw["ssl_context"] = _client_cert_context(conn)
        pool_kw.update(ca_certs=None, ca_cert_data=None, cert_file=None, key_file=None)
    return api


def _check_pem(pem: str, what: str) -> None:
    try:
        ssl.create_default_context(cadata=pem)
    except (ssl.SSLError, ValueError) as exc:
        raise ClientConfigError(
            f"The {what} is not a valid PEM certificate ({exc.__class__.__name__}): "
            "paste the whole -----BEGIN CERTIFICATE----- block."
        ) from None


def _client_cert_context(conn: Connection) -> ssl.SSLContext:
    context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
    if conn.ca_cert:
        context.load_verify_locations(cadata=conn.ca_cert)
    else:
        context.load_default_certs()
    # ssl can only load a certificate chain from a file: keep it on disk for an instant.
    fd, path = tempfile.mkstemp(prefix="provider-admin-", suffix=".pem")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(conn.client_key.strip() + "\n" + conn.client_cert.strip() + "\n")
        context.load_cert_chain(path)
    except ssl.SSLError as exc:
        raise ClientConfigError(
            f"The client certificate or key cannot be loaded ({exc.reason or exc}): "
            "they must be PEM and belong together."
        ) from None
    finally:
        os.unlink(path)
    return context


class ClientCache:
    """A bounded, thread-safe LRU of ApiClients keyed by connection fingerprint."""

    def __init__(self, maxsize: int = DEFAULT_CACHE_SIZE):
        self.maxsize = maxsize
        self._clients: OrderedDict[str, k8s.ApiClient] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, conn: Connection) -> k8s.ApiClient:
        key = conn.fingerprint()
        with self._lock:
            api = self._clients.get(key)
            if api is not None:
                self._clients.move_to_end(key)
                return api
        api = build_client(conn)  # outside the lock: loading certificates is slow-ish
        evicted = []
        with self._lock:
            if key in self._clients:  # another thread won the race
                evicted.append(api)
                api = self._clients[key]
                self._clients.move_to_end(key)
            else:
                self._clients[key] = api
                while len(self._clients) > self.maxsize:
                    evicted.append(self._clients.popitem(last=False)[1])
        for old in evicted:
            old.close()
        return api

    def resize(self, maxsize: int) -> None:
        """Change the bound; the least recently used clients beyond it are closed."""
        evicted = []
        with self._lock:
            self.maxsize = maxsize
            while len(self._clients) > maxsize:
                evicted.append(self._clients.popitem(last=False)[1])
        for old in evicted:
            old.close()

    def clear(self) -> None:
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
        for api in clients:
            api.close()

    def __len__(self) -> int:
        return len(self._clients)


_cache = ClientCache()


def get_client(conn: Connection) -> k8s.ApiClient:
    """The shared client for `conn` (a changed connection gets a new one)."""
    return _cache.get(conn)


def size_client_cache(connections: int) -> int:
    """Make room for this many connections (never below the default); returns the bound."""
    size = max(DEFAULT_CACHE_SIZE, connections)
    if size != _cache.maxsize:
        _cache.resize(size)
    return size


def clear_client_cache() -> None:
    """Close and forget every cached client (tests, shutdown)."""
    _cache.clear()
