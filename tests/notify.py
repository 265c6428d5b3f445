"""Real receivers for notifications: an HTTP server that records what webhooks get (and
answers as scripted), and an SMTP server (aiosmtpd) that keeps the mail it is sent."""
from __future__ import annotations

import email
import html
import email.policy
import hashlib
import hmac
import json
import re
import socket
import threading
import ssl
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from provider_admin.extensions import db
from provider_admin.models import NotificationTarget

from .conftest import field_error

PAGE = "/manage/notifications/"
REPLAY_WINDOW = 300  # seconds a receiver accepts a signature's timestamp off its clock


class Receiver:
    """A webhook receiver on 127.0.0.1. `answers` are (status, body, headers) in turn for the
    first requests; then every request is answered 200."""

    def __init__(self):
        self.requests: list[dict] = []
        self.answers: list[tuple[int, bytes, dict]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                              "at": time.time()})
                    status, text, headers = receiver.answers.pop(0) if receiver.answers else (200, b"ok", {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        # A path and query that are secret in real chat webhooks: they must never be shown.
        return f"http://127.0.0.1:{self.server.server_port}/hooks/T0SECRETPATH?key=SECRETQUERY"

    def answer(self, status: int, body: bytes = b"", headers: dict | None = None, times: int = 1) -> None:
        with self.lock:
            self.answers += [(status, body, headers or {})] * times

    def bodies(self) -> list[dict]:
        with self.lock:
            return [json.loads(r["body"]) for r in self.requests]

    def verified(self, secret: str, now: float | None = None) -> list[dict]:
        """The JSON bodies whose signature holds (HMAC-SHA256 of "<t>.<body>") and whose
        timestamp is within the replay window; raises on any that does not."""
        now = now or time.time()
        bodies = []
        for request in self.requests:
            header = request["headers"]["X-Provider-Admin-Signature"]
            parts = dict(item.split("=", 1) for item in header.split(","))
            expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + request["body"],
                                hashlib.sha256).hexdigest()
            assert hmac.compare_digest(parts["v1"], expected), "the signature does not hold"
            assert abs(now - int(parts["t"])) < REPLAY_WINDOW, "the timestamp is off"
            bodies.append(json.loads(request["body"]))
        return bodies

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Inbox:
    """aiosmtpd's handler: keeps every message it accepts."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def smtp_server():
    """A real SMTP server on 127.0.0.1 (plain: no STARTTLS offered); `.port`, `.inbox`."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    controller.inbox = inbox
    yield controller
    controller.stop()


SMTP_USER, SMTP_PASSWORD = "alerts", "mail-password"


@pytest.fixture
def smtp_starttls(tmp_path):
    """A real SMTP server that takes mail only after STARTTLS (a certificate for 127.0.0.1 from
    a test CA, whose file is `.ca_file`) and a sign-in as SMTP_USER with SMTP_PASSWORD."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    inbox = Inbox()
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=logins[-1] == (SMTP_USER, SMTP_PASSWORD), handled=False)

    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), tls_context=context,
                            require_starttls=True, auth_required=True, authenticator=authenticator)
    controller.start()
    controller.inbox, controller.logins = inbox, logins
    controller.ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(controller.ca_file))
    yield controller
    controller.stop()


def add_target(actions, name, kind, url="", recipients=""):
    """Add a target through the page; returns the target and the page's answer."""
    response = actions.post(PAGE, {"name": name, "kind": kind, "url": url, "recipients": recipients})
    page = response.get_data(as_text=True)
    assert response.status_code == 201, field_error(page, "url") or field_error(page, "recipients")
    return db.session.scalar(sa.select(NotificationTarget).filter_by(name=name)), page


def shown_secret(page: str) -> str:
    """The signing secret the page shows once, after a JSON webhook was added."""
    return html.unescape(re.search(r'id="new-secret"[^>]*value="([^"]+)"', page).group(1))
