"""The connections a Kubernetes client opens, and how they read: the peer they reached is
checked before anything is written (`BlockedPeerError`), the host name is looked up within
the request's time left (getaddrinfo has no timeout of its own: it runs in a thread of its
own, which is abandoned when the time is up, `ResolveTimeout`), and every read of the answer
waits only until the request's deadline (`DeadlineExceeded`), which `client.send()` sets in
`request_deadline` for the thread making the request.
"""
from __future__ import annotations

import http.client
import io
import ipaddress
import socket
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError
from urllib3.util.connection import allowed_gai_family

from .connection import SETTING, peer_refusal


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


request_deadline = threading.local()  # `at`: the deadline of the request this thread is making


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
        deadline = getattr(request_deadline, "at", None)
        if deadline is not None:
            sock = _DeadlineReader(sock, deadline, request_deadline.timeout)
        super().__init__(sock, *args, **kwargs)


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
        deadline = getattr(request_deadline, "at", None)
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


class GuardedPoolManager(urllib3.PoolManager):
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
