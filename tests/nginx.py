"""Debian's nginx in front of the app, configured with the README's own blocks.

The README's "Behind a reverse proxy" section holds the nginx configuration users copy; the
tests run exactly those blocks, with the app's test address for `http://127.0.0.1:8000` and
the test authentication server's for `http://127.0.0.1:4180`, so the two cannot drift.

- :class:`Nginx` runs one nginx (master and worker, `daemon off`, everything in a temporary
  folder) with any number of :class:`Server` blocks, each on its own free port of 127.0.0.1,
  plain or TLS: a page of another origin (a portal that frames the app) is one more block.
- :class:`AuthServer` is the intranet's single sign-on as `auth_request` sees it: 200 with an
  `X-Auth-Request-Email` for a known ticket cookie, 200 without one for a ticket of nobody in
  particular, 401 otherwise.
- :func:`gunicorn` serves the app the way production does, configured by the environment.

Where nginx is missing the tests skip, or fail when PROVIDER_ADMIN_REQUIRE_NGINX is set (CI).
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from http.cookies import SimpleCookie
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NGINX = os.environ.get("PROVIDER_ADMIN_NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"
PREFIX = "/provider-admin"
# The addresses the README's blocks name, replaced by the tests' own.
README_APP = "http://127.0.0.1:8000"
README_AUTH = "http://127.0.0.1:4180"
TICKET_COOKIE = "intranet_ticket"
START_TIMEOUT = 15.0


def require_nginx() -> None:
    """Skip without nginx, or fail where CI says the nginx tests must run."""
    if os.path.isfile(NGINX) and os.access(NGINX, os.X_OK):
        return
    reason = f"nginx not found at {NGINX} (apt-get install nginx, or set PROVIDER_ADMIN_NGINX)"
    if os.environ.get("PROVIDER_ADMIN_REQUIRE_NGINX"):
        pytest.fail(f"{reason}, and PROVIDER_ADMIN_REQUIRE_NGINX is set", pytrace=False)
    pytest.skip(f"{reason}: nginx tests skipped")


def readme_blocks() -> list[str]:
    """The ```nginx blocks of the README's "Behind a reverse proxy" section, in order."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Behind a reverse proxy", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```nginx\n(.*?)```", section, re.S)


def readme_location(app_url: str) -> str:
    """The README's plain block, proxying to `app_url`."""
    return _filled(readme_blocks()[0], {README_APP: app_url})


def readme_sso_locations(app_url: str, auth_url: str) -> str:
    """The README's block that signs people in by the header its authentication answered."""
    return _filled(readme_blocks()[1], {README_APP: app_url, README_AUTH: auth_url})


def _filled(block: str, addresses: dict[str, str]) -> str:
    for example, actual in addresses.items():
        # Exactly the address, not a longer one that starts with it (":80000").
        pattern = re.escape(example) + r"(?![0-9])"
        assert re.search(pattern, block), f"the README's nginx block no longer names {example}:\n{block}"
        block = re.sub(pattern, actual, block)
    return block


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}:\n{_tail(log)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {START_TIMEOUT} s:\n{_tail(log)}")


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def stop(process: subprocess.Popen) -> None:
    """End a process this module started (by its own handle), waiting for it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Server:
    """One `server { }` block: `body` holds its locations; with `tls` (a trustme CA) it
    serves https with a certificate for 127.0.0.1."""

    body: str
    tls: object | None = None
    port: int = field(default_factory=free_port)

    @property
    def origin(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def config(self, directory: Path, index: int) -> str:
        listen = f"listen 127.0.0.1:{self.port}{' ssl' if self.tls else ''};"
        certificate = ""
        if self.tls:
            pem = directory / f"server{index}.pem"
            self.tls.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
            certificate = f"ssl_certificate {pem};\n    ssl_certificate_key {pem};"
        return f"server {{\n    {listen}\n    server_name _;\n    {certificate}\n{self.body}\n}}\n"


class Nginx:
    """Debian's nginx with our own configuration in `directory`; never the system's."""

    def __init__(self, directory: Path, servers: list[Server]):
        self.directory, self.servers = Path(directory), servers
        self.process: subprocess.Popen | None = None

    @property
    def error_log(self) -> Path:
        return self.directory / "error.log"

    @property
    def access_log(self) -> Path:
        return self.directory / "access.log"

    def config(self) -> str:
        d = self.directory
        temp = "\n".join(f"    {kind}_temp_path {d / kind};" for kind in
                         ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        servers = "".join(server.config(d, index) for index, server in enumerate(self.servers))
        # The master runs as whoever runs the tests; as root its workers would be nobody, who
        # cannot write the temporary folder.
        user = "user root;\n" if os.geteuid() == 0 else ""
        return (f"{user}daemon off;\nmaster_process on;\nworker_processes 1;\npid {d / 'nginx.pid'};\n"
                f"error_log {self.error_log} info;\nevents {{ worker_connections 256; }}\n"
                f"http {{\n    access_log {self.access_log};\n{temp}\n    default_type application/octet-stream;\n"
                f"{servers}}}\n")

    def write(self) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / "nginx.conf"
        path.write_text(self.config())
        return path

    def command(self, *extra: str) -> list[str]:
        return [NGINX, "-p", str(self.directory), "-c", str(self.write()), "-e", str(self.error_log), *extra]

    def start(self) -> Nginx:
        command = self.command()
        with open(self.directory / "stderr.log", "wb") as stderr:
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        for server in self.servers:
            wait_for_port(server.port, self.process, self.error_log)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class AuthServer:
    """The intranet's sign-in as nginx's `auth_request` asks it, over real HTTP."""

    def __init__(self):
        self.tickets: dict[str, str | None] = {}
        self.asked: list[dict] = []  # the headers of each subrequest, as nginx sent them
        auth = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                auth.asked.append(dict(self.headers))
                cookie = SimpleCookie(self.headers.get("Cookie", ""))
                ticket = cookie[TICKET_COOKIE].value if TICKET_COOKIE in cookie else None
                if ticket not in auth.tickets:
                    self.send_response(401)
                else:
                    self.send_response(200)
                    if auth.tickets[ticket]:
                        self.send_header("X-Auth-Request-Email", auth.tickets[ticket])
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def ticket(self, email: str | None) -> str:
        """A signed-in intranet session: its cookie value. `None`: signed in as nobody in
        particular (the answer names no e-mail)."""
        value = secrets.token_urlsafe(16)
        self.tickets[value] = email
        return value

    def __enter__(self) -> AuthServer:
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         name="auth-server", daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def gunicorn(config: dict, database_url: str, directory: Path):
    """The app under gunicorn, as in production (one worker), configured by the environment
    like any deployment; yields its base URL. Each value of `config` becomes
    PROVIDER_ADMIN_<KEY> (JSON for anything but text)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVIDER_ADMIN_") or k.endswith("INSTANCE_PATH")}
    env.update({f"PROVIDER_ADMIN_{key}": value if isinstance(value, str) else json.dumps(value)
                for key, value in config.items()})
    env.update(DATABASE_URL=database_url, PROVIDER_ADMIN_AUTO_MIGRATE="false", PROVIDER_ADMIN_RUN_SCHEDULER="false")
    log = Path(directory) / "gunicorn.log"
    with open(log, "wb") as stderr:  # Flask logs a view's exception on stderr, as gunicorn its errors
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", "1", "--threads", "4", "--bind", f"127.0.0.1:{port}",
             "--error-logfile", "-", "--graceful-timeout", "2", "app:create_app()"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        wait_for_port(port, process, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)
    errors = [line for line in log.read_text(errors="replace").splitlines() if "Traceback" in line or "[ERROR]" in line]
    assert not errors, f"gunicorn logged errors:\n{_tail(log, 80)}"
