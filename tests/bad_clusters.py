"""Clusters that misbehave, over real sockets on 127.0.0.1: an asyncio server in a daemon
thread that answers the health check's requests well, except the one it is told to spoil.

``BadCluster("slow_body", on="/version", drip=0.2)`` answers GET /version with a body that
comes a byte every 0.2 s and every other request like a healthy, deployed API server (for
the provider ``provider`` whose marker it serves). The faults are the names of ``FAULTS``.
``BadCluster("slow_tls")`` relays a healthy HTTPS server a byte at a time, from the TLS
handshake on. ``BadCluster("closing")`` is well-behaved but closes the connection after each answer.
``tls=True`` serves HTTPS with a trustme CA (``ca_pem``); ``fault="no_handshake"`` accepts
the connection and never completes a TLS handshake (nor reads a byte).
``BadRelay(kube_api, "silent", nth=6)`` passes requests on to a working API server (the
emulator) and spoils only the sixth with the fault: a cluster that fails in the middle of an
operation.
"""
from __future__ import annotations

import asyncio
import functools
import itertools
import json
import ssl
import threading
import zlib

import trustme

from provider_admin.kube import Connection
from tests.kube import KUBE_VERSION, TOKEN, provider_uid

VERSION = json.dumps({"major": "1", "minor": "33", "gitVersion": KUBE_VERSION}).encode()
GIB = 1024 ** 3


class BadCluster:
    """One misbehaving API server; a context manager."""

    def __init__(self, fault: str, *, on: str = "/version", provider: str = "p1",
                 namespace: str = "ws", drip: float = 0.2, location: str = "", tls: bool = False,
                 give_up: float = 15.0):
        assert fault in FAULTS, fault
        self.fault, self.on, self.drip, self.location = fault, on, drip, location
        self.give_up = give_up  # a trickle stops (and the connection closes) after this long
        self.provider, self.namespace = provider, namespace
        self.ca = trustme.CA() if tls or fault in ("no_handshake", "slow_tls") else None
        self.ca_pem = self.ca.cert_pem.bytes().decode() if self.ca else None
        self.requests: list[str] = []  # "GET /path" of every request read
        self.url = ""
        self._ready = threading.Event()

    def __enter__(self) -> BadCluster:
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True,
                                        name=f"bad-cluster-{self.fault}")
        self._thread.start()
        assert self._ready.wait(15), "the bad cluster did not start"
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._done.set)
        self._thread.join(15)

    def connection(self, namespace: str | None = None, **overrides) -> Connection:
        fields = {"server": self.url, "namespace": namespace or self.namespace,
                  "ca_cert": self.ca_pem, "token": TOKEN}
        return Connection(**{**fields, **overrides})

    async def _main(self) -> None:
        self._loop, self._done = asyncio.get_running_loop(), asyncio.Event()
        self._clients: set[asyncio.Task] = set()
        servers = await self._servers()
        self._ready.set()
        await self._done.wait()
        for server in servers:
            server.close()
        for task in list(self._clients):
            task.cancel()

    async def _servers(self) -> list[asyncio.Server]:
        """Listen, and set `url` to where the client goes."""
        context = None
        if self.ca and self.fault != "no_handshake":
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.ca.issue_cert("127.0.0.1").configure_cert(context)
        servers = [await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=context)]
        if self.fault == "slow_tls":  # in front of the TLS server: its bytes, one at a time
            inner = servers[0].sockets[0].getsockname()[1]
            servers.append(await asyncio.start_server(functools.partial(self._relay, inner),
                                                      "127.0.0.1", 0))
        port = servers[-1].sockets[0].getsockname()[1]
        self.url = f"{'https' if self.ca else 'http'}://127.0.0.1:{port}"
        return servers

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(asyncio.current_task())
        try:
            if self.fault == "no_handshake":
                await asyncio.Event().wait()  # ssl is off for this fault: the client's hello waits
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                method, path = head.decode("latin-1").split(" ")[:2]
                self.requests.append(f"{method} {path}")
                if path == self.on and FAULTS[self.fault]:
                    await FAULTS[self.fault](self, writer)
                    return
                await self._answer_well(path, writer)
                if self.fault == "closing":
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._clients.discard(asyncio.current_task())
            writer.close()

    async def _relay(self, port: int, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        """Pass the client's bytes to the server at `port` at once, and its answer back a byte
        every `drip` seconds (for at most `give_up` seconds)."""
        self._clients.add(asyncio.current_task())
        upstream, up = await asyncio.open_connection("127.0.0.1", port)

        async def forward():
            while data := await reader.read(65536):
                up.write(data)
                await up.drain()

        forwarding = asyncio.create_task(forward())
        until = self._loop.time() + self.give_up
        try:
            while self._loop.time() < until and (byte := await upstream.read(1)):
                writer.write(byte)
                await writer.drain()
                await asyncio.sleep(self.drip)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            forwarding.cancel()
            self._clients.discard(asyncio.current_task())
            up.close()
            writer.close()

    async def _answer_well(self, path: str, writer: asyncio.StreamWriter) -> None:
        close = {"Connection": "close"} if self.fault == "closing" else {}
        if path == "/version":
            await _send(writer, 200, VERSION, **close)
        elif path == "/readyz":
            await _send(writer, 200, b"ok", "text/plain", **close)
        elif path == f"/api/v1/namespaces/{self.namespace}/configmaps/provider-admin-marker":
            marker = {"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "provider-admin-marker", "namespace": self.namespace},
                      "data": {"provider": self.provider, "provider-uid": provider_uid(self.provider)}}
            await _send(writer, 200, json.dumps(marker).encode(), **close)
        else:
            await _send(writer, 404, b'{"kind": "Status", "code": 404, "message": "not found"}')


async def _send(writer, status: int, body: bytes, content_type: str = "application/json",
                **headers) -> None:
    head = [f"HTTP/1.1 {status} X", f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}", *(f"{k.replace('_', '-')}: {v}" for k, v in headers.items())]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
    if headers.get("Connection") == "close":
        await writer.drain()
        await asyncio.sleep(0.05)  # the body comes after the client has read the head
    writer.write(body)
    await writer.drain()


async def _forever() -> None:
    await asyncio.Event().wait()


async def _silent(cluster, writer) -> None:
    """Read the request, never answer, keep the connection open (half-open to the client)."""
    await _forever()


async def _hang_up(cluster, writer) -> None:
    """Read the request and close the connection without a word."""


async def _slow_headers(cluster, writer) -> None:
    """A status line, then header bytes one at a time, each well within a read timeout."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Slow: ")
    await _trickle(cluster, writer, itertools.repeat(ord("a")))


async def _slow_body(cluster, writer) -> None:
    """Headers at once, then the body a byte at a time."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {len(VERSION) * 1000}\r\n\r\n".encode())
    await _trickle(cluster, writer, VERSION * 1000)


async def _trickle(cluster, writer, data) -> None:
    """Send `data` a byte every `drip` seconds, for at most `give_up` seconds."""
    until = asyncio.get_running_loop().time() + cluster.give_up
    for byte in data:
        if asyncio.get_running_loop().time() > until:
            return
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(cluster.drip)


async def _not_http(cluster, writer) -> None:
    """Something else listening on the port: an SSH banner, then binary noise."""
    writer.write(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n\x00\x00\x01\x14\x0a\x14\xff\xfe<script>x</script>")
    await writer.drain()
    await _forever()


async def _not_json(cluster, writer) -> None:
    """A web page where JSON belongs."""
    page = b"<html><head><style>p{}</style></head><body><p>Welcome to <b>nginx</b>!" \
           b"<script>alert(1)</script></p>" + b"x" * 10_000 + b"</body></html>"
    await _send(writer, 200, page, "text/html")


async def _truncated(cluster, writer) -> None:
    """Content-Length promises more than is sent, then the connection closes."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
                 + VERSION[:20])
    await writer.drain()


async def _short_length(cluster, writer) -> None:
    """Content-Length smaller than the body: the client reads a cut JSON document."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n"
                 + VERSION)
    await writer.drain()
    await _forever()


async def _long_length(cluster, writer) -> None:
    """Content-Length larger than the body, and the connection stays open."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n"
                 + VERSION)
    await writer.drain()
    await _forever()


async def _redirect(cluster, writer) -> None:
    location = cluster.location or cluster.url + cluster.on  # no location given: a loop
    await _send(writer, 302, b"", "text/plain", Location=location)


async def _huge(cluster, writer) -> None:
    """A body of some gigabytes, sent as fast as the client reads."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {5 * GIB}\r\n\r\n[".encode())
    chunk = b" " * 65536
    for _ in range(5 * GIB // len(chunk)):
        writer.write(chunk)
        await writer.drain()


async def _endless_chunked(cluster, writer) -> None:
    """Chunked transfer that never sends its last chunk."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
    while True:
        writer.write(chunk)
        await writer.drain()


@functools.cache
def _bomb() -> bytes:
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)
    spaces = b" " * 1024 * 1024
    return squeeze.compress(b"[") + b"".join(squeeze.compress(spaces) for _ in range(64)) + squeeze.flush()


async def _gzip_bomb(cluster, writer) -> None:
    """A small gzip body that inflates to 64 MiB."""
    await _send(writer, 200, _bomb(), Content_Encoding="gzip")


async def _many_headers(cluster, writer) -> None:
    """Headers without end, sent as fast as the client reads."""
    writer.write(b"HTTP/1.1 200 OK\r\n")
    for i in itertools.count():
        writer.write(b"X-Header-%d: %s\r\n" % (i, b"v" * 100))
        await writer.drain()


async def _long_header(cluster, writer) -> None:
    """One header line without end."""
    writer.write(b"HTTP/1.1 200 OK\r\nX-Long: ")
    while True:
        writer.write(b"v" * 65536)
        await writer.drain()


async def _bad_chunk(cluster, writer) -> None:
    """Chunked transfer whose chunk size is not a number."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")
    await writer.drain()
    await _forever()


async def _bad_gzip(cluster, writer) -> None:
    """Content-Encoding: gzip over a body that is not gzip."""
    await _send(writer, 200, VERSION, Content_Encoding="gzip")


FAULTS = {
    "silent": _silent, "slow_headers": _slow_headers, "slow_body": _slow_body,
    "not_http": _not_http, "not_json": _not_json, "truncated": _truncated,
    "short_length": _short_length, "long_length": _long_length, "redirect": _redirect,
    "huge": _huge, "endless_chunked": _endless_chunked, "gzip_bomb": _gzip_bomb,
    "many_headers": _many_headers, "long_header": _long_header, "bad_gzip": _bad_gzip,
    "bad_chunk": _bad_chunk, "hang_up": _hang_up,
    "no_handshake": _silent,
    "slow_tls": None,  # no fault behind it: every byte of TLS (handshake too) comes slowly
    "closing": None,  # no fault: every answer says Connection: close, as HTTP/1.0 proxies do
}


class BadRelay(BadCluster):
    """A healthy API server (`upstream`, e.g. a KubeAPI) behind a relay that spoils its `nth`
    request (counted from 1, over all connections; or the first that is "METHOD /path") with
    `fault` (a name of FAULTS: "silent" hangs, "slow_body" trickles); every other request is
    passed on whole. A context manager,
    with ``connection()`` like the servers it stands in for; ``requests`` lists what it read."""

    def __init__(self, upstream, fault: str, nth: int | str, *, drip: float = 0.2, give_up: float = 15.0):
        assert FAULTS.get(fault), fault
        super().__init__(fault, drip=drip, give_up=give_up)
        self.upstream, self.nth = upstream, nth

    async def _servers(self) -> list[asyncio.Server]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        return [server]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(asyncio.current_task())
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                length = next((int(line.split(":", 1)[1]) for line in lines
                               if line.lower().startswith("content-length:")), 0)
                body = await reader.readexactly(length)
                request = " ".join(lines[0].split(" ")[:2])
                self.requests.append(request)
                if self.nth == len(self.requests) or (self.nth == request and self.requests.count(request) == 1):
                    await FAULTS[self.fault](self, writer)
                    return
                writer.write(await self._pass_on(lines, body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._clients.discard(asyncio.current_task())
            writer.close()

    async def _pass_on(self, lines: list[str], body: bytes) -> bytes:
        """The upstream's whole answer to one request, sent on a connection of its own."""
        kept = [line for line in lines[1:] if line and not line.lower().startswith("connection:")]
        head = "\r\n".join([lines[0], *kept, "Connection: close", "", ""]).encode("latin-1")
        port = int(self.upstream.url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(head + body)
            await writer.drain()
            return await reader.read()  # until the upstream closes the connection
        finally:
            writer.close()
