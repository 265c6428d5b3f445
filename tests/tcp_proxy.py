"""A TCP proxy on 127.0.0.1 between the app and a server (the test database), that a test
cuts and restores: the database "goes away" for the processes behind the proxy only, never
for anyone else using the same server.

    with TCPProxy("127.0.0.1", 5432) as proxy:
        url = proxy.url_for(database_url)  # the same database, through the proxy
        proxy.cut()       # every open connection is closed; new ones are refused
        proxy.restore()   # new connections go through again
        proxy.lose_answer(after=b"INSERT INTO provider_checks", to=b"COMMIT")

`cut(blackhole=True)` accepts new connections and never answers them instead (a host that
went away without a word); `lose_answer` lets the next statement matching `to` (sent after
one matching `after` on the same connection) reach the server, then drops the server's
answer and closes that connection: the client cannot know whether its commit happened.
"""
from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit, urlunsplit


class _Pair:
    """One client connection and its connection to the server."""

    def __init__(self, client: socket.socket, server: socket.socket):
        self.client, self.server = client, server
        self.armed = False  # saw `after`: the next `to` loses its answer
        self.dropping = False  # the answer now coming back is dropped

    def close(self) -> None:
        for sock in (self.client, self.server):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


class TCPProxy:
    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.port = 0
        self.connections = 0  # accepted and forwarded, since the start
        self._pairs: set[_Pair] = set()
        self._held: list[socket.socket] = []  # black-holed clients
        self._lock = threading.Lock()
        self._cut = False
        self._blackhole = False
        self._lose: tuple[bytes, bytes] | None = None
        self.lost_answers = 0
        self._listener: socket.socket | None = None
        self._closed = False

    # Life -------------------------------------------------------------------------------------
    def __enter__(self) -> TCPProxy:
        self._listen()
        return self

    def __exit__(self, *exc) -> None:
        self._closed = True
        self._close_listener()
        self._drop_all()

    def url_for(self, database_url: str) -> str:
        """`database_url` with its host and port replaced by the proxy's."""
        parts = urlsplit(database_url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{self.port}" if userinfo else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    # Faults ------------------------------------------------------------------------------------
    def cut(self, blackhole: bool = False) -> None:
        """Close every open connection; refuse new ones (or, `blackhole`, accept them and stay
        silent)."""
        with self._lock:
            self._cut, self._blackhole = True, blackhole
        if not blackhole:
            self._close_listener()
        self._drop_all()

    def restore(self) -> None:
        """Let new connections through again (on the same port)."""
        with self._lock:
            self._cut, self._blackhole = False, False
            held, self._held = self._held, []
        for sock in held:
            sock.close()
        if self._listener is None:
            self._listen()

    def lose_answer(self, after: bytes, to: bytes = b"COMMIT") -> None:
        """Arm a lost answer (once): see the module's docstring."""
        with self._lock:
            self._lose = (after, to)

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    # Inside ------------------------------------------------------------------------------------
    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True, name="tcp-proxy").start()

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()

    def _drop_all(self) -> None:
        with self._lock:
            pairs, self._pairs = list(self._pairs), set()
            held = self._held if self._closed else []
        for pair in pairs:
            pair.close()
        for sock in held:
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed: cut() or the end
            with self._lock:
                if self._cut:
                    if self._blackhole:
                        self._held.append(client)
                    else:
                        client.close()
                    continue
            try:
                server = socket.create_connection(self.target, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            pair = _Pair(client, server)
            with self._lock:
                self._pairs.add(pair)
                self.connections += 1
            threading.Thread(target=self._pump, args=(pair, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(pair, False), daemon=True).start()

    def _pump(self, pair: _Pair, upstream: bool) -> None:
        source, sink = (pair.client, pair.server) if upstream else (pair.server, pair.client)
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if upstream:
                    self._watch(pair, data)
                elif pair.dropping:
                    with self._lock:
                        self.lost_answers += 1
                    break
                sink.sendall(data)
        except OSError:
            pass
        with self._lock:
            self._pairs.discard(pair)
        pair.close()

    def _watch(self, pair: _Pair, data: bytes) -> None:
        with self._lock:
            if self._lose is None:
                return
            after, to = self._lose
            if not pair.armed and after in data:
                pair.armed = True
            elif pair.armed and to in data:
                pair.dropping = True
                self._lose = None
