"""Turn what the client raises into a category and a short message that says how to fix it.

Messages are plain text; anything quoted from the cluster is a short excerpt on one line,
without control characters, and left unescaped (the app escapes it when rendering).
"""
from __future__ import annotations

import json
import re
import socket
import ssl
import unicodedata
from http.client import BadStatusLine, HTTPException, IncompleteRead, RemoteDisconnected
from urllib.parse import urlsplit

import urllib3.exceptions as u3
from kubernetes.client.exceptions import ApiException

from .client import Budget, Redirected, ResponseTooLarge
from .transport import BlockedPeerError, DeadlineExceeded, ResolveTimeout
from .connection import BLOCKED_NETWORKS, Connection, host_refusal

READY = "ready"
UNREACHABLE = "unreachable"
TLS = "tls"
UNAUTHORIZED = "unauthorized"
TOKEN_EXPIRED = "token_expired"
FORBIDDEN = "forbidden"
MISSING_PERMISSION = "missing_permission"
API_UNHEALTHY = "api_unhealthy"
NOT_DEPLOYED = "not_deployed"
MARKER_CONFLICT = "marker_conflict"
STORAGE_CLASS_MISSING = "storage_class_missing"
SERVICE_ACCOUNT_MISSING = "service_account_missing"
ADDRESS_REFUSED = "address_refused"
TIMEOUT = "timeout"  # it accepted the connection, but no whole answer came in time
REDIRECTED = "redirected"
BAD_ANSWER = "bad_answer"  # not HTTP, broken HTTP, or not what a Kubernetes API answers
TOO_LARGE = "too_large"
ERROR = "error"
CATEGORIES = (READY, UNREACHABLE, TLS, UNAUTHORIZED, TOKEN_EXPIRED, FORBIDDEN, MISSING_PERMISSION,
              API_UNHEALTHY, NOT_DEPLOYED, MARKER_CONFLICT, STORAGE_CLASS_MISSING,
              SERVICE_ACCOUNT_MISSING, ADDRESS_REFUSED, TIMEOUT, REDIRECTED, BAD_ANSWER, TOO_LARGE,
              ERROR)
NOT_KUBERNETES_HINT = "Check that the cluster address is the API server's URL (e.g. https://host:6443)."

SNIPPET_LENGTH = 150  # what is quoted from a cluster's answer: an excerpt, never a body
SNIPPET_SCAN = 64 * 1024  # characters of a body looked at for it (past any <head> and <style>)
CA_HINT = ("set the cluster's CA certificate on the provider (certificate-authority-data "
           "from its kubeconfig, base64-decoded)")


def snippet(text: object, limit: int = SNIPPET_LENGTH, *, body: bool = False) -> str:
    """One line of at most `limit` characters without control characters (line breaks,
    escapes, bidi overrides); a response `body` loses its HTML tags."""
    text = str(text or "")[:SNIPPET_SCAN]
    if body and "<" in text and ">" in text:
        text = re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.S | re.I)
        text = re.sub(r"<[^>]*>", " ", text)
    text = "".join(" " if c.isspace() or unicodedata.category(c) in ("Cc", "Cf") else c
                   for c in text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def server_message(body: str, reason: str | None = None) -> str:
    """The `message` of a Kubernetes Status body, else a snippet of the body or reason."""
    try:
        data = json.loads(body or "")
        if isinstance(data, dict) and data.get("message"):
            return snippet(data["message"])
    except ValueError:
        pass
    return snippet(body, body=True) or snippet(reason)


def classify_http(status: int, body: str, doing: str, reason: str | None = None) -> tuple[str, str]:
    """Category and message for an error status answered to `doing` (e.g. "GET /version")."""
    detail = server_message(body, reason)
    said = f": {detail}" if detail else ""
    if status == 401:
        return UNAUTHORIZED, (
            f"The cluster rejected the credentials (401 Unauthorized on {doing}){said}. The token "
            "may be revoked, expired or from another cluster: paste a current service account "
            "token (the bootstrap manifest's token Secret holds one)."
        )
    if status == 403:
        return FORBIDDEN, (
            f"Forbidden (403 on {doing}){said}. The credentials were accepted but lack this "
            "permission: apply the bootstrap manifest, which grants it."
        )
    if status >= 500:
        return API_UNHEALTHY, (
            f"The API server failed on {doing} ({status}){said}. "
            "Check the health of the control plane."
        )
    return ERROR, f"Unexpected answer {status} to {doing}{said}."


def classify_transport(
    exc: BaseException, conn: Connection, timeout: float, budget: Budget | None = None
) -> tuple[str, str] | None:
    """Category and message for a failure to exchange HTTP with the server at all; a request
    cut short because the `budget` of its whole operation was spent says that (a budget for
    one request's time says no more than the timeout)."""
    address = urlsplit(conn.server).netloc or conn.server
    host = urlsplit(conn.server).hostname or address
    chain = list(_chain(exc))
    if budget is not None and budget.seconds != timeout and budget.spent and any(
            isinstance(e, (DeadlineExceeded, u3.TimeoutError, TimeoutError, socket.timeout)) for e in chain):
        return TIMEOUT, out_of_time(budget, address)
    for e in chain:
        if isinstance(e, BlockedPeerError):
            return ADDRESS_REFUSED, str(e)
        if isinstance(e, ResponseTooLarge):
            return TOO_LARGE, (f"{str(e).rstrip('.')} ({address}). Check that the cluster "
                               "address is the API server's URL, not a file or stream server.")
        if isinstance(e, Redirected):
            return REDIRECTED, redirect_message(e, conn)
    if any(isinstance(e, ResolveTimeout) for e in chain):
        return UNREACHABLE, (
            f"Looking up the host name {host} took longer than {timeout:g} s (the DNS servers did "
            "not answer in time). Check the cluster address and this machine's DNS servers."
        )
    if any(isinstance(e, (u3.NameResolutionError, socket.gaierror)) for e in chain):
        return UNREACHABLE, (
            f"Cannot resolve the host name {host} (DNS lookup failed). Check the cluster address."
        )
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return UNREACHABLE, (
            f"Connection to {address} was refused. Check that the API server is running and the "
            "cluster address and port are right."
        )
    if any(isinstance(e, u3.ConnectTimeoutError) for e in chain):
        return UNREACHABLE, (
            f"Connecting to {address} timed out after {timeout:g} s. Check the address, "
            "firewalls and that the cluster is up."
        )
    if any(isinstance(e, (DeadlineExceeded, u3.ReadTimeoutError, TimeoutError, socket.timeout))
           for e in chain):
        if any("handshake" in str(e) for e in chain):
            return TIMEOUT, (
                f"{address} accepted the connection but the TLS handshake did not complete within "
                f"{timeout:g} s. Something that is not the API server may hold the port, or it "
                "is overloaded."
            )
        return TIMEOUT, (
            f"{address} accepted the connection but did not answer within {timeout:g} s (no "
            "answer, or one too slow to finish in time). The API server may be overloaded, or the "
            "address points to something else."
        )
    tls = _tls_error(chain, exc)
    if tls is not None:
        if isinstance(tls, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(tls):
            reason = snippet(getattr(tls, "verify_message", None) or tls, 120)
            return TLS, (
                f"TLS certificate verification failed for {address} ({reason}): {CA_HINT}, and "
                "make sure the address matches the certificate."
            )
        return TLS, (
            f"TLS handshake with {address} failed ({snippet(tls, 120)}). Check that the address "
            f"is the API server's https:// URL; if it is, {CA_HINT}."
        )
    broken = _broken_http(chain, address)
    if broken:
        return BAD_ANSWER, broken
    if any(isinstance(e, (RemoteDisconnected, ConnectionResetError)) for e in chain):
        return UNREACHABLE, (
            f"{address} accepted the connection and closed it without answering. Check that the "
            "API server is running and the cluster address and port are right."
        )
    if any(isinstance(e, (u3.NewConnectionError, OSError, u3.ProtocolError, HTTPException))
           for e in chain):
        last = chain[-1]
        return UNREACHABLE, (
            f"Cannot connect to {address} ({snippet(last, 120)}). Check the cluster address and "
            "the network path to it."
        )
    return None


def out_of_time(budget: Budget, address: str) -> str:
    """Why an operation stopped when its budget ran out."""
    return (f"out of time: {budget.what} may take {budget.seconds:g} s with all its requests to "
            f"the cluster, and {address} had not answered them all by then (no answer, or answers "
            "too slow to finish in time). The API server may be overloaded, or the address points "
            "to something else.")


def redirect_message(redirect: Redirected, conn: Connection) -> str:
    """What a redirect said, and why it was not followed."""
    location = redirect.location or ""
    own = urlsplit(conn.server)
    try:
        target = urlsplit(location)
        target_host, itself = target.hostname, (target.hostname, target.port) == (own.hostname, own.port)
    except ValueError:
        target_host, itself = None, False
    refusal = host_refusal(target_host, BLOCKED_NETWORKS) if target_host else None
    if refusal:
        where = f"to {refusal}: {snippet(location, 80)}"
    elif itself or location.startswith("/"):
        where = f"back to itself ({snippet(location, 80)})"
    elif location:
        where = f"to {snippet(location, 80)}"
    else:
        where = "without saying where"
    return (f"{own.netloc or conn.server} answered with a redirect ({redirect.status}) {where}. "
            "Provider Admin never follows redirects (the credentials would go along): set the "
            "API server's own address on the provider.")


def _broken_http(chain: list[BaseException], address: str) -> str | None:
    """The message for an answer that is not HTTP, or HTTP cut short; None for a closed or
    reset connection, which says nothing about what listens."""
    if any(isinstance(e, ValueError) and "base 16" in str(e) for e in chain):
        # http.client turns a chunk size that is not a number into IncompleteRead
        return (f"{address} sent a malformed chunked answer (a chunk size that is not a "
                f"number). {NOT_KUBERNETES_HINT}")
    for e in chain:
        if isinstance(e, (u3.IncompleteRead, IncompleteRead)):
            return (f"{address} broke off its answer ({snippet(e, 80)}): the answer was "
                    "truncated or its Content-Length was wrong. The API server or a proxy in "
                    "front of it may be failing.")
        if isinstance(e, u3.DecodeError):
            said = snippet(e.args[0] if e.args and isinstance(e.args[0], str) else e, 100)
            return (f"{address} sent an answer that cannot be decoded ({said}): its "
                    "Content-Encoding does not match the body. The API server or a proxy in front "
                    "of it may be failing.")
        if isinstance(e, BadStatusLine) and not isinstance(e, RemoteDisconnected):
            sent = snippet(e.args[0] if e.args else "", 80)
            return (f"{address} did not answer in HTTP (it sent: {sent or 'nothing readable'}): "
                    f"something other than an API server listens there. {NOT_KUBERNETES_HINT}")
    for e in chain:
        if isinstance(e, (u3.InvalidChunkLength, u3.InvalidHeader, u3.HeaderParsingError,
                          HTTPException)) and not isinstance(e, RemoteDisconnected):
            return (f"{address} sent a malformed HTTP answer ({snippet(e, 80)}). "
                    f"{NOT_KUBERNETES_HINT}")
    return None


def _tls_error(chain: list[BaseException], exc: BaseException) -> BaseException | None:
    for e in chain:
        if isinstance(e, (ssl.SSLError, ssl.CertificateError, u3.SSLError)):
            inner = [x for x in _chain(e) if isinstance(x, ssl.SSLError)]
            return inner[-1] if inner else e
    if isinstance(exc, ApiException) and not exc.status and "SSLError" in str(exc.reason):
        # the client turns urllib3's SSLError into ApiException(status=0) when not retrying
        return exc
    return None


def _chain(exc: BaseException):
    """The exception, what it wraps (urllib3 `reason`), its causes and contexts."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [getattr(e, "reason", None) if isinstance(getattr(e, "reason", None),
                                                          BaseException) else None,
                 e.__cause__, e.__context__]
        todo += [a for a in e.args if isinstance(a, BaseException)]
