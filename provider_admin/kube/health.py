"""The health check of one provider's cluster: what works, what fails and how to fix it.

`check()` never raises, and ends within its timeout: the timeout is a deadline for the whole
check, however many requests it makes and however slowly the cluster answers. A routine check (full=False) of a healthy cluster makes three
requests: GET /version, GET /readyz and GET of the marker ConfigMap. A full check adds one
SelfSubjectAccessReview per needed permission, the storage class and the service account.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from kubernetes import client as k8s

from . import errors as e
from .client import ClientConfigError, get_client, send
from .client import quote_segment as q
from .connection import Connection, token_expiry, token_expiry_phrase
from .permissions import (
    MARKER_GRANTS_KEY,
    MARKER_KEY,
    MARKER_NAME,
    MARKER_UID_KEY,
    Permission,
    missing_grants,
    required_permissions,
)

TOKEN_WARNING_DAYS = 7
STALE_BOOTSTRAP = ("The cluster's bootstrap is older than this provider's settings need: "
                   "Deploy again or apply the new manifest")
REVIEWS_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


@dataclass
class CheckResult:
    """`category` is one of errors.CATEGORIES; `message` is plain text saying what failed
    and how to fix it; `requests` counts the API requests made."""

    ok: bool
    category: str
    message: str
    kube_version: str | None = None
    token_expires_at: datetime | None = None
    warnings: list[str] = field(default_factory=list)
    requests: int = 0
    missing_permissions: list[str] = field(default_factory=list)


class _Failed(Exception):
    """Ends a check early with a category and message."""

    def __init__(self, category: str, message: str):
        super().__init__(message)
        self.category = category
        self.message = message


def check(
    conn: Connection,
    *,
    provider_name: str,
    provider_uid: str | None = None,
    storage_class: str | None = None,
    service_account: str | None = None,
    needs_service_accounts: bool = False,
    needs_services: bool = False,
    full: bool = False,
    timeout: float = 5.0,
) -> CheckResult:
    """Check that `conn` can take new workspaces for the provider `provider_uid` (its marker
    records the uid; a marker from before uids is accepted when it names `provider_name`).
    `needs_services`: external SSH is on, so the Role must grant services too."""
    run = _Check(conn, timeout)
    needs = {"needs_service_accounts": needs_service_accounts, "needs_services": needs_services}
    try:
        run.token()
        run.api = get_client(conn)
        run.version()
        run.readyz()
        run.marker(provider_name, provider_uid, needs)
        if full:
            run.permissions(required_permissions(**needs))
            if storage_class:
                run.storage_class(storage_class)
            if service_account:
                run.service_account(service_account)
    except _Failed as failed:
        return run.result(failed.category, failed.message)
    except ClientConfigError as exc:
        return run.result(e.TLS, str(exc))
    except Exception as exc:  # never raise out of a health check
        what = e.snippet(exc) or type(exc).__name__
        return run.result(e.ERROR, f"Unexpected error while checking: {what}")
    return run.result(e.READY, f"Ready: Kubernetes {run.kube_version or '(unknown version)'}, "
                               f"namespace {conn.namespace}.")


class _Check:
    def __init__(self, conn: Connection, timeout: float):
        self.conn = conn
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.api: k8s.ApiClient | None = None
        self.requests = 0
        self.kube_version: str | None = None
        self.expires_at: datetime | None = None
        self.warnings: list[str] = []
        self.missing: list[str] = []

    def result(self, category: str, message: str) -> CheckResult:
        return CheckResult(
            ok=category == e.READY, category=category, message=message,
            kube_version=self.kube_version, token_expires_at=self.expires_at,
            warnings=self.warnings, requests=self.requests, missing_permissions=self.missing,
        )

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, str]:
        """One API request with the timeout; a failure to talk HTTP at all ends the check."""
        self.requests += 1
        try:
            return send(self.api, method, path, timeout=self.timeout, body=body,
                        deadline=self.deadline)
        except Exception as exc:
            found = e.classify_transport(exc, self.conn, self.timeout)
            if found:
                raise _Failed(*found) from None
            raise

    def get(self, path: str, doing: str, *, allow: tuple[int, ...] = ()) -> tuple[int, dict]:
        """GET a JSON object; error statuses other than `allow` end the check."""
        status, text = self.request("GET", path)
        if status >= 400 and status not in allow:
            raise _Failed(*e.classify_http(status, text, doing))
        try:
            data = json.loads(text) if status < 400 else {}
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise _Failed(e.BAD_ANSWER, f"The answer to {doing} is not a Kubernetes object "
                                        f"({e.snippet(text, 80, body=True) or 'empty'}). "
                                        f"{e.NOT_KUBERNETES_HINT}")
        return status, data

    def token(self) -> None:
        if self.conn.in_cluster:
            return  # the kubelet rotates the mounted token long before it expires
        expires = token_expiry(self.conn.token)
        self.expires_at = expires
        if expires is None:
            return
        left = expires - datetime.now(timezone.utc)
        when = expires.strftime("%Y-%m-%d %H:%M UTC")
        if left <= timedelta(0):
            raise _Failed(e.TOKEN_EXPIRED, (
                f"The service account token expired on {when}. Create a new one (e.g. "
                "`kubectl create token` or the bootstrap manifest's token Secret) and paste it."
            ))
        if left < timedelta(days=TOKEN_WARNING_DAYS):
            self.warnings.append(f"The token {token_expiry_phrase(expires)} ({when}): renew it.")

    def version(self) -> None:
        status, text = self.request("GET", "/version")
        if status == 404:
            raise _Failed(e.BAD_ANSWER, (
                f"{self.conn.server} answered 404 to GET /version: it does not look like a "
                "Kubernetes API server. Use the API server's URL (e.g. https://host:6443)."
            ))
        if status != 200:
            raise _Failed(*e.classify_http(status, text, "GET /version"))
        try:
            git_version = json.loads(text).get("gitVersion")
        except (ValueError, AttributeError):
            git_version = None
        if not isinstance(git_version, str):
            raise _Failed(e.BAD_ANSWER, (
                f"{self.conn.server} answered GET /version with something that is not a "
                f"Kubernetes version ({e.snippet(text, 80, body=True) or 'empty'}). "
                f"{e.NOT_KUBERNETES_HINT}"
            ))
        self.kube_version = e.snippet(git_version, 64)

    def readyz(self) -> None:
        status, text = self.request("GET", "/readyz")
        if status in (401, 403):
            raise _Failed(*e.classify_http(status, text, "GET /readyz"))
        if status == 404:
            self.warnings.append("The API server has no /readyz endpoint (Kubernetes older than "
                                 "1.16?), so its readiness was not checked.")
            return
        if status != 200 or text.strip() != "ok":
            raise _Failed(e.API_UNHEALTHY, (
                f"The API server reports it is not ready (GET /readyz answered {status}: "
                f"{e.snippet(text, body=True) or 'no details'}). "
                "Check the health of the control plane."
            ))

    def marker(self, provider_name: str, provider_uid: str | None, needs: dict) -> None:
        ns = self.conn.namespace
        status, marker = self.get(f"/api/v1/namespaces/{q(ns)}/configmaps/{MARKER_NAME}",
                                  f"get configmaps in namespace {ns}", allow=(404,))
        if status == 404:
            raise _Failed(e.NOT_DEPLOYED, self._not_deployed_message())
        data = marker.get("data") if isinstance(marker.get("data"), dict) else {}
        owner, owner_uid = data.get(MARKER_KEY), data.get(MARKER_UID_KEY)
        mine = owner_uid == provider_uid if owner_uid else owner == provider_name
        if not mine:
            who = (f"provider {e.snippet(owner, 80)}" if owner
                   else "another installation (its marker names no provider)")
            former = ("" if owner_uid or not owner else
                      f" If {e.snippet(owner, 80)} was this provider's name before a rename, rename "
                      "it back and press Deploy, which records the provider's id in the marker; "
                      "then rename it again.")
            raise _Failed(e.MARKER_CONFLICT, (
                f"Namespace {ns} is already used by {who}. Choose another namespace, or delete "
                f"the ConfigMap {MARKER_NAME} in {ns} if that provider no longer exists.{former}"
            ))
        if not owner_uid:  # written before providers had a uid: adopted by its name
            self.warnings.append(f"{STALE_BOOTSTRAP} (its marker does not record this provider's "
                                 "id yet, so a rename would lose the namespace).")
            return
        lacking = missing_grants(str(data.get(MARKER_GRANTS_KEY) or ""), **needs)
        if lacking:
            self.warnings.append(f"{STALE_BOOTSTRAP} (its Role does not grant {', '.join(lacking)}).")

    def _not_deployed_message(self) -> str:
        ns = self.conn.namespace
        fix = "Apply the bootstrap manifest with kubectl, or press Deploy."
        try:
            status, _ = self.request("GET", f"/api/v1/namespaces/{q(ns)}")
        except Exception:  # only refines the message; 403 is normal for a namespaced token
            status = None
        if status == 404:
            return f"Not deployed: namespace {ns} does not exist. {fix}"
        return f"Not deployed: namespace {ns} has no ConfigMap {MARKER_NAME}. {fix}"

    def permissions(self, needed: list[Permission]) -> None:
        ns = self.conn.namespace
        for perm in needed:
            review = {
                "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": {"namespace": ns, "verb": perm.verb,
                                                "group": perm.group, "resource": perm.resource}},
            }
            status, text = self.request("POST", REVIEWS_PATH, review)
            if status >= 400:
                raise _Failed(*e.classify_http(status, text, "create selfsubjectaccessreviews"))
            try:
                allowed = json.loads(text)["status"]["allowed"] is True
            except (ValueError, KeyError, TypeError):
                raise _Failed(e.BAD_ANSWER, "The SelfSubjectAccessReview answer has no status: "
                                            f"{e.snippet(text, 80, body=True) or 'empty'}") from None
            if not allowed:
                self.missing.append(str(perm))
        if self.missing:
            listed = "; ".join(f"missing permission: {m} in namespace {ns}" for m in self.missing)
            raise _Failed(e.MISSING_PERMISSION, f"{listed} — apply the bootstrap manifest.")

    def storage_class(self, name: str) -> None:
        status, _ = self.get(f"/apis/storage.k8s.io/v1/storageclasses/{q(name)}",
                             f"get storageclasses/{name}", allow=(403, 404))
        if status == 404:
            raise _Failed(e.STORAGE_CLASS_MISSING, (
                f"Storage class {name} does not exist in the cluster. Create it, or choose "
                "one that `kubectl get storageclass` lists."
            ))
        if status == 403:
            self.warnings.append(
                f"Could not verify storage class {name}: the credentials may not read "
                "storage classes (apply the bootstrap manifest's ClusterRole to allow it)."
            )

    def service_account(self, name: str) -> None:
        ns = self.conn.namespace
        status, _ = self.get(f"/api/v1/namespaces/{q(ns)}/serviceaccounts/{q(name)}",
                             f"get serviceaccounts/{name} in namespace {ns}", allow=(403, 404))
        if status == 404:
            raise _Failed(e.SERVICE_ACCOUNT_MISSING, (
                f"Service account {name} does not exist in namespace {ns}. Create it "
                f"(`kubectl -n {ns} create serviceaccount {name}`) or clear the field."
            ))
        if status == 403:
            self.warnings.append(
                f"Could not verify service account {name}: the credentials may not read "
                f"service accounts in namespace {ns}."
            )
