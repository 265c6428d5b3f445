"""Sending one message: a signed JSON webhook, a chat webhook's {"text": ...}, or an e-mail.

Webhooks go only where a cluster's credentials may go (no link-local or cloud metadata
address, unless ALLOW_LINK_LOCAL_CLUSTERS), checked against the address actually connected
to, so that a name resolving there is refused too. They are https, except on this host
(localhost, 127.0.0.1, ::1: a receiver next to the app). Redirects are never followed, every
step has a short timeout, and only the start of an answer is read.
"""
import hashlib
import hmac
import http.client
import ipaddress
import json
import smtplib
import socket
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import urlsplit

from ..kube.connection import BLOCKED_NETWORKS, host_refusal, peer_refusal

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
EXCERPT = 300  # characters of an answer kept in the delivery log
SIGNATURE_HEADER = "X-Provider-Admin-Signature"
SMTP_SECURITY = ("starttls", "tls", "none")


class SendError(Exception):
    """A message was not delivered; the message says why (shown in the delivery log)."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Message:
    """An event, as every channel sends it."""

    delivery_id: int
    kind: str
    subject: str
    text: str
    data: dict
    occurred_at: str
    test: bool

    def json(self) -> dict:
        return {"id": self.delivery_id, "event": self.kind, "occurred_at": self.occurred_at,
                "subject": self.subject, "text": self.text, "data": self.data, "test": self.test}


def check_url(value: str, *, allow_link_local: bool) -> str:
    """The webhook URL as stored, or ValueError saying what is wrong with it."""
    value = (value or "").strip()
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError("The URL has spaces or control characters in it.")
    try:
        parts = urlsplit(value)
        host, _ = parts.hostname, parts.port
    except ValueError:
        raise ValueError("Not a valid URL: check the host (an IPv6 address goes in [brackets]) and the port.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not host:
        raise ValueError("Must be an https URL, e.g. https://hooks.example.com/provider-admin")
    if scheme == "http" and host.lower() not in LOCAL_HOSTS:
        raise ValueError("Must be https: http:// is taken on this host only (localhost, 127.0.0.1).")
    if "@" in parts.netloc:
        raise ValueError("Must not carry a user name or password (user@host).")
    if parts.fragment or "#" in value:
        raise ValueError("Must not have a fragment (#...).")
    refusal = host_refusal(host, () if allow_link_local else BLOCKED_NETWORKS)
    if refusal:
        raise ValueError(f"Points to {refusal}, where nothing may be sent unless the "
                         "ALLOW_LINK_LOCAL_CLUSTERS setting allows it.")
    return value


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The header value: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def send_webhook(url: str, secret: str, message: Message, *, timeout: float, blocked) -> int:
    body = json.dumps(message.json()).encode()
    headers = {"X-Provider-Admin-Event": message.kind, "X-Provider-Admin-Delivery": str(message.delivery_id),
               SIGNATURE_HEADER: signature(secret, body, int(time.time()))}
    return post(url, body, headers, timeout=timeout, blocked=blocked)


def send_text(url: str, message: Message, *, timeout: float, blocked) -> int:
    text = f"[test] {message.text}" if message.test else message.text
    return post(url, json.dumps({"text": text}).encode(), {}, timeout=timeout, blocked=blocked)


def post(url: str, body: bytes, headers: dict, *, timeout: float, blocked) -> int:
    """POST the body; the answer's status when it is a 2xx, else SendError."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(parts.hostname, port, timeout=timeout,
                                                 context=ssl.create_default_context())
    else:
        connection = http.client.HTTPConnection(parts.hostname, port, timeout=timeout)
    connection._create_connection = _checked_connect(tuple(blocked))
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", path, body, {"Content-Type": "application/json",
                                                "User-Agent": "Provider-Admin-Notifications", **headers})
        response = connection.getresponse()
        excerpt = response.read(EXCERPT * 4).decode("utf-8", "replace")[:EXCERPT]
    except SendError:
        raise
    except (OSError, http.client.HTTPException) as error:
        raise SendError(f"Could not reach {origin(url)}: {error or type(error).__name__}") from None
    finally:
        connection.close()
    if 200 <= response.status < 300:
        return response.status
    if 300 <= response.status < 400:
        raise SendError(f"Answered {response.status}, a redirect (to {response.getheader('Location', '?')[:200]}), "
                        "which is not followed: enter the final URL.", response.status)
    raise SendError(f"Answered {response.status} {response.reason}: {excerpt}".rstrip(": "), response.status)


def _checked_connect(blocked: tuple):
    def connect(address, timeout=None, source_address=None):
        sock = socket.create_connection(address, timeout, source_address)
        peer = ipaddress.ip_address(sock.getpeername()[0].split("%")[0])
        refusal = peer_refusal(peer, blocked)
        if refusal:
            sock.close()
            raise SendError(f"{address[0]} resolves to {refusal}, where nothing may be sent unless the "
                            "ALLOW_LINK_LOCAL_CLUSTERS setting allows it.")
        return sock
    return connect


def send_email(recipients: list[str], message: Message, config) -> int:
    """Send over the configured SMTP server; returns 250 (accepted), else SendError."""
    host, security = config["SMTP_HOST"], str(config["SMTP_SECURITY"]).lower()
    if not host:
        raise SendError("No mail server is configured: set PROVIDER_ADMIN_SMTP_HOST.")
    if security not in SMTP_SECURITY:
        raise SendError(f"PROVIDER_ADMIN_SMTP_SECURITY is {security!r}: use starttls, tls or none.")
    mail = EmailMessage()
    mail["From"], mail["To"] = config["SMTP_FROM"], ", ".join(recipients)
    mail["Subject"] = f"[Provider Admin]{' [test]' if message.test else ''} {message.subject}"
    mail.set_content(message.text + "\n")
    timeout = float(config["NOTIFY_TIMEOUT"])
    smtp_class = smtplib.SMTP_SSL if security == "tls" else smtplib.SMTP
    try:
        with smtp_class(host, int(config["SMTP_PORT"]), timeout=timeout) as smtp:
            if security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if config["SMTP_USER"]:
                smtp.login(config["SMTP_USER"], config["SMTP_PASSWORD"] or "")
            refused = smtp.send_message(mail)
    except smtplib.SMTPResponseException as error:
        said = error.smtp_error
        said = said.decode("utf-8", "replace") if isinstance(said, bytes) else str(said)
        raise SendError(f"The mail server answered {error.smtp_code}: {said[:EXCERPT]}", error.smtp_code) from None
    except (OSError, smtplib.SMTPException) as error:
        raise SendError(f"Could not send through {host}: {error or type(error).__name__}") from None
    if refused:
        raise SendError(f"The mail server refused {', '.join(sorted(refused))}")
    return 250
