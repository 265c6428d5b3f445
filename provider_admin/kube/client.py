"""Kubernetes API clients for Connections: no retries, explicit timeouts, cached per connection.

`send()` makes one raw request through a client; callers never see the kubernetes package.

The health check runs in a thread pool, so the cache is thread-safe; checks of the same
connection reuse its connection pool. The sweeper sizes the cache from the number of
providers (`size_client_cache`), so that every provider keeps its client between checks.
Certificates stay in memory: PEM CA data goes to the client as data, and a client
certificate is loaded into an SSLContext from a temporary file that is removed at once.

Every connection a client opens checks the address it reached before the request (and its
token) is written: a name that resolves to a link-local or metadata address is refused
(`BlockedPeerError`), whatever the form was told. Redirects are never followed: `send()`
raises `Redirected`.

A timeout is a deadline for the whole exchange, not for each read: a server that trickles
its headers or body a byte at a time still ends within it. `send()` takes the time left
before a caller's `deadline` (a health check makes several requests within one), and every
read of the answer waits at most until then, and so does looking up the cluster's host name
(getaddrinfo has no timeout of its own: it runs in a thread of its own, which is abandoned
when the time is up). A `Budget` is such a deadline for an operation
that a person waits for or that must not hang (a Deploy, a removal, a step of a workspace
build): however many requests it makes, it ends within its seconds.
"""
from __future__ import annotations

import http.client
import io
import ipaddress
import os
import socket
import ssl
import tempfile
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from urllib.parse import quote

import urllib3
from kubernetes import client as k8s
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError
from urllib3.util.connection import allowed_gai_family
from urllib3.util.ssl_ import create_urllib3_context

from .connection import SETTING, Connection, peer_refusal

USER_AGENT = "provider-admin"
DEFAULT_CACHE_SIZE = 64
MAX_RESPONSE_BYTES = 4 * 1024 * 1024  # an answer past this is an error, never read whole


class ClientConfigError(ValueError):
    """The connection's certificates cannot be loaded (bad PEM); the message says which."""


class BlockedPeerError(OSError):
    """The connection reached an address credentials may not go to; nothing was sent."""

    def __init__(self, host: str, refusal: str, message: str | None = None):
        super().__init__(message or (
            f"{host} resolves to {refusal}: Provider Admin refused to connect and sent nothing "
            f"(credentials go there only when the {SETTING} setting allows it). "
            "Use the cluster's own address."))


def clear_text_refusal(host: str, peer: str) -> BlockedPeerError:
    return BlockedPeerError(host, peer, (
        f"{host} is an http:// address reaching {peer}, off this host: the credentials would travel "
        "in clear, so Provider Admin sent nothing. Edit the provider to the API server's https:// address."))


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


class ResolveTimeout(ConnectTimeoutError):
    """Looking up the cluster's host name took longer than the request may wait."""

    def __init__(self, host: str, waited: float):
        super().__init__(f"resolving {host} took longer than {waited:g} s")
        self.host = host


class DeadlineExceeded(TimeoutError):
    """The time allowed for a request (or a whole check) ran out while waiting for the answer."""

    def __init__(self, timeout: float):
        super().__init__(f"no complete answer within {timeout:g} s")
        self.timeout = timeout


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


_deadline = threading.local()  # the deadline of the request this thread is making


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
    _deadline.at, _deadline.timeout = deadline, timeout
    try:
        response = api.call_api(method, url, headers, data, _request_timeout=request_timeout(left))
        raw = response.response  # not read yet: the client asks urllib3 not to preload
        try:
            data = raw.read(MAX_RESPONSE_BYTES + 1, decode_content=True) or b""
        except BaseException:
            raw.close()
            raise
    finally:
        _deadline.at = None
    if len(data) > MAX_RESPONSE_BYTES:
        raw.close()  # drop the connection rather than drain the rest
        raise ResponseTooLarge(MAX_RESPONSE_BYTES)
    raw.release_conn()
    if 300 <= response.status < 400:
        raise Redirected(response.status, raw.headers.get("Location"))
    return response.status, data.decode("utf-8", "replace")


class _DeadlineReader(io.RawIOBase):
    """Reads an answer from the socket, each read waiting only until the request's deadline."""

    def __init__(self, sock: socket.socket, deadline: float, timeout: float):
        self.sock, self.deadline, self.timeout = sock, deadline, timeout
        # As socket.makefile() does: an answer that ends with "Connection: close" is read
        # after http.client closed the socket, which stays open until this file closes.
        sock._io_refs += 1

    def close(self) -> None:
        if not self.closed:
            self.sock._decref_socketios()
        super().close()

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(self)  # what http.client reads the answer from

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded(self.timeout)
        self.sock.settimeout(left)
        try:
            return self.sock.recv_into(buffer)
        except (TimeoutError, socket.timeout):
            if self.deadline - time.monotonic() <= 0:
                raise DeadlineExceeded(self.timeout) from None
            raise


class _DeadlineResponse(http.client.HTTPResponse):
    """http.client's response, reading through a `_DeadlineReader` when a deadline is set."""

    def __init__(self, sock, *args, **kwargs):
        deadline = getattr(_deadline, "at", None)
        if deadline is not None:
            sock = _DeadlineReader(sock, deadline, _deadline.timeout)
        super().__init__(sock, *args, **kwargs)


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
    api.rest_client.pool_manager = _GuardedPoolManager(conn.blocked_networks,
                                                       **unguarded.connection_pool_kw)
    unguarded.clear()
    if conn.client_cert and conn.client_key:
        pool_kw = api.rest_client.pool_manager.connection_pool_kw
        pool_kw["ssl_context"] = _client_cert_context(conn)
        pool_kw.update(ca_certs=None, ca_cert_data=None, cert_file=None, key_file=None)
    return api


class _PeerCheck:
    """Checks the address a new socket reached before anything is written to it. Plain http
    (an address stored before only https was accepted, or `kubectl proxy` on this host) may
    only reach this host itself: credentials never cross a network in clear."""

    clear_text = False

    def __init__(self, *args, blocked_networks: tuple[str, ...] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.blocked_networks = blocked_networks

    def _new_conn(self):
        sock = self._connect_resolved()
        peer = ipaddress.ip_address(sock.getpeername()[0].split("%")[0])
        peer = getattr(peer, "ipv4_mapped", None) or peer
        refusal = peer_refusal(peer, self.blocked_networks) if self.blocked_networks else None
        if refusal or (self.clear_text and not peer.is_loopback):
            sock.close()
            raise BlockedPeerError(self.host, refusal) if refusal else clear_text_refusal(self.host, str(peer))
        return sock


    def _connect_resolved(self):
        """urllib3's connect to each of the host's addresses, looked up within the time left."""
        deadline = getattr(_deadline, "at", None)
        within = self.timeout if deadline is None else deadline - time.monotonic()
        if not isinstance(within, (int, float)):  # urllib3's "no timeout given"
            within = None
        name, error = self._dns_host, None
        try:
            for address in _resolve(name.strip("[]"), self.port, within):
                self._dns_host = address  # `host` (TLS's server name) reads it: put back below
                if deadline is not None:
                    self.timeout = max(0.001, deadline - time.monotonic())
                try:
                    return super()._new_conn()
                except (OSError, ConnectTimeoutError) as exc:  # what urllib3 raises: the next address
                    error = exc
            raise error
        finally:
            self._dns_host = name


def _resolve(host: str, port: int, within: float | None) -> list[str]:
    """The addresses of `host` (an address stays as it is); ResolveTimeout after `within` s."""
    try:
        ipaddress.ip_address(host.split("%")[0])
        return [host]
    except ValueError:
        pass
    found: Future = Future()

    def look_up() -> None:
        try:
            found.set_result(socket.getaddrinfo(host, port, allowed_gai_family(), socket.SOCK_STREAM))
        except BaseException as exc:  # handed to the waiting thread
            found.set_exception(exc)

    threading.Thread(target=look_up, daemon=True, name="resolve").start()
    try:
        infos = found.result(timeout=None if within is None else max(within, 0))
    except FutureTimeout:
        raise ResolveTimeout(host, within) from None
    return list(dict.fromkeys(info[4][0] for info in infos))


class _GuardedHTTPConnection(_PeerCheck, HTTPConnection):
    clear_text = True
    response_class = _DeadlineResponse


class _GuardedHTTPSConnection(_PeerCheck, HTTPSConnection):
    response_class = _DeadlineResponse


class _GuardedPoolManager(urllib3.PoolManager):
    """A PoolManager whose connections refuse peers in `blocked_networks`."""

    connection_classes = {"http": _GuardedHTTPConnection, "https": _GuardedHTTPSConnection}

    def __init__(self, blocked_networks: tuple[str, ...], **connection_pool_kw):
        super().__init__(**connection_pool_kw)
        self.blocked_networks = tuple(blocked_networks)

    def _new_pool(self, scheme, host, port, request_context=None):
        pool = super()._new_pool(scheme, host, port, request_context)
        pool.ConnectionCls = self.connection_classes[scheme]
        pool.conn_kw = {**pool.conn_kw, "blocked_networks": self.blocked_networks}
        return pool


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
