"""A Kubernetes API for tests: kmock's emulator over real HTTP(S), run in a daemon thread.

Fixtures (import them into a test module or conftest):

- ``kube_api``: a running :class:`KubeAPI` over plain HTTP with scripting helpers;
- ``kube_api_tls``: the same over HTTPS with a trustme CA (``api.ca_pem``);
- ``kube_target``: what end-to-end tests run against. By default the emulator; when the
  environment variable ``PROVIDER_ADMIN_TEST_KUBECONFIG`` names a kubeconfig file (flattened,
  token or client-certificate user: ``kubectl config view --raw --flatten --minify``;
  ``PROVIDER_ADMIN_TEST_CONTEXT`` picks a context), a :class:`RealCluster` instead, whose
  objects go to a fresh ``pa-test-…`` namespace that is removed afterwards. Tests that
  script faults use ``kube_api``/``kube_api_tls``, which skip when a real cluster is set.

Scripting (see :class:`KubeAPI`): ``respond("get /version/", 401)``, ``slow(..., seconds)``,
``deny("create", "pods")`` for SelfSubjectAccessReviews (or ``rbac_role = ("ws", "provider-admin")``
to answer them from that stored Role's rules), ``stop()``/``start()`` for
"connection refused", ``put(...)`` to store objects, ``requests`` to count what was served.

kmock 0.8 gaps filled here (it is pinned; this depends on its internals):
namespace URLs (``/api/v1/namespaces[/name]``) crash its path parser, so the parser is
wrapped to treat them as the cluster-wide resource ``v1/namespaces``; the client's discovery
paths with a trailing slash (``/version/``, ``/api/``, ``/apis/``) and ``/readyz`` are
answered by low-priority reactions; SelfSubjectAccessReviews bypass the object store (else
the second review answers 409) and are answered from ``denied``.
"""
from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import ssl
import threading
import uuid
import warnings
from collections.abc import Iterator

import aiohttp.test_utils
import kmock
import pytest
import trustme
from kmock._internal import parsing

from provider_admin.kube import Connection, bootstrap_manifest, parse_kubeconfig, undeploy
from provider_admin.kube.client import clear_client_cache
from provider_admin.kube.permissions import grants

REAL_KUBECONFIG_ENV = "PROVIDER_ADMIN_TEST_KUBECONFIG"
REAL_CONTEXT_ENV = "PROVIDER_ADMIN_TEST_CONTEXT"
KUBE_VERSION = "v1.33.1"
TOKEN = "test-token"
REVIEWS = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
REQUEST_LOG_MAX, REQUEST_LOG_KEEP = 40, 10


def provider_uid(name: str) -> str:
    """The uid a test provider named `name` gets (conftest's make_provider), so that a marker
    can be written before the provider exists."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"provider-admin-test:{name}"))


def _parse_path(path: str, _original=parsing.parse_path) -> parsing.ParsedPath:
    parts = path.strip("/").split("/")
    if parts[:3] == ["api", "v1", "namespaces"] and len(parts) <= 4:
        name = parts[3] if len(parts) == 4 else None
        return parsing.ParsedPath("", "v1", "namespaces", None, name)
    return _original(path)


if not getattr(parsing.parse_path, "_provider_admin", False):
    _parse_path._provider_admin = True
    parsing.parse_path = _parse_path


class _Emulator(kmock.KubernetesEmulator):
    """Adds delays before answering and keeps access reviews out of the object store."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.delays: list[tuple[kmock.Criteria, float]] = []
        self.refusals: list[kmock.Criteria] = []  # scripted errors: the store stays as it was
        self.log: list[kmock.Request] = []  # every request served, for the tests to read

    async def _handle(self, request):
        # kmock matches every reaction against its whole request log, so each request
        # costs more than the last; keeping only the recent ones keeps long runs fast.
        self.log.append(request)
        if len(self._requests) > REQUEST_LOG_MAX:
            del self._requests[:-REQUEST_LOG_KEEP]
        for criteria, seconds in list(self.delays):
            if criteria(request):
                await asyncio.sleep(seconds)
        if request.resource is not None and request.resource.plural == "selfsubjectaccessreviews":
            return await kmock.RawHandler._handle(self, request)
        if any(criteria(request) for criteria in self.refusals):
            # kmock would apply a create or delete to its store and only then answer with the
            # scripted error; a real API server that refuses a request changes nothing.
            return await kmock.RawHandler._handle(self, request)
        return await super()._handle(request)


def _status(code: int, message: str) -> dict:
    reasons = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "AlreadyExists",
               500: "InternalError", 503: "ServiceUnavailable"}
    return {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
            "code": code, "reason": reasons.get(code, "Unknown"), "message": message}


class KubeAPI:
    """The emulator plus helpers; thread-safe to script from the test's thread."""

    scripted = True

    def __init__(self, *, tls: bool = False, require_client_cert: bool = False):
        self.ca = trustme.CA() if tls else None
        self.ca_pem = self.ca.cert_pem.bytes().decode() if self.ca else None
        self.require_client_cert = require_client_cert
        self.denied: set[tuple[str, str]] = set()
        self.rbac_role: tuple[str, str] | None = None  # (namespace, name): reviews follow its rules
        self.url = ""
        self.port: int | None = None
        self._priority = itertools.count(1)
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._server: kmock.Server | None = None
        self.k: _Emulator | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    # Lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> KubeAPI:
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),),
                                        daemon=True, name="kube-api")
        self._thread.start()
        if not self._ready.wait(15) or self._failure:
            raise RuntimeError(f"The test Kubernetes API did not start: {self._failure!r}")
        return self

    def __exit__(self, *exc) -> None:
        clear_client_cache()
        if self.loop and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._done.set)
            self._thread.join(15)

    async def _main(self) -> None:
        try:
            self.loop = asyncio.get_running_loop()
            self._done = asyncio.Event()
            async with _Emulator() as k:
                self.k = k
                with warnings.catch_warnings():  # kmock uses a deprecated importlib call
                    warnings.simplefilter("ignore", DeprecationWarning)
                    k.resources.load_bundled()
                self._defaults(k)
                await self._start()
                self._ready.set()
                await self._done.wait()
                await self._stop()
        except BaseException as exc:  # report start-up failures to the waiting test
            self._failure = exc
            self._ready.set()

    def _defaults(self, k: _Emulator) -> None:
        version = {"major": "1", "minor": KUBE_VERSION.split(".")[1], "gitVersion": KUBE_VERSION,
                   "gitCommit": "0" * 40, "gitTreeState": "clean", "goVersion": "go1.24.2",
                   "buildDate": "2025-05-15T00:00:00Z", "compiler": "gc", "platform": "linux/amd64"}
        low = k ** -1  # below anything a test scripts, above kmock's own fallbacks
        low[{"get /version", "get /version/"}] << version
        low["get /api/"] << k._serve_api
        low["get /apis/"] << k._serve_apis
        low["get /readyz"] << b"ok"
        low[f"post {REVIEWS}"] << 201 << self._review

    def _review(self, request: kmock.Request) -> dict:
        spec = (request.data or {}).get("spec") or {}
        attrs = spec.get("resourceAttributes") or {}
        verb, resource = attrs.get("verb"), attrs.get("resource")
        allowed = (verb, resource) not in self.denied and self._role_allows(verb, resource)
        status = {"allowed": allowed} if allowed else {"allowed": False, "reason": "no RBAC rule"}
        return {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "metadata": {}, "spec": spec, "status": status}

    def _role_allows(self, verb: str, resource: str) -> bool:
        """With `rbac_role` set, what the stored Role's rules allow (kmock has no RBAC)."""
        if self.rbac_role is None:
            return True
        key = (kmock.resource("rbac.authorization.k8s.io/v1/roles"), *self.rbac_role)
        role = dict(self.k.objects.items()).get(key)
        rules = [] if role is None or role.deleted else role.raw.get("rules") or []
        return any(verb in rule.get("verbs", ()) and resource in rule.get("resources", ())
                   for rule in rules)

    async def _start(self) -> None:
        kwargs = {"port": self.port} if self.port else {}
        if self.ca:
            kwargs["server_cls"] = self._tls_server_cls()
        self._server = kmock.Server(self.k, **kwargs)
        await self._server.__aenter__()
        self.port = self._server.port
        self.url = str(self._server.url).rstrip("/")

    async def _stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            await server.__aexit__(None, None, None)

    def _tls_server_cls(self) -> type:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        if self.require_client_cert:
            self.ca.configure_trust(context)
            context.verify_mode = ssl.CERT_REQUIRED

        class TLSServer(aiohttp.test_utils.RawTestServer):
            async def start_server(self, loop=None, **kwargs):
                await super().start_server(loop=loop, ssl=context, **kwargs)

        return TLSServer

    def _call(self, fn, *args):
        """Run `fn` in the server's loop (scripting is not thread-safe otherwise)."""
        async def run():
            result = fn(*args)
            return await result if asyncio.iscoroutine(result) else result
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(15)

    # Server control -------------------------------------------------------------------
    def stop(self) -> None:
        """Stop listening: clients get "connection refused" on the same URL."""
        self._call(self._stop)

    def start(self) -> None:
        """Listen again on the same port after stop()."""
        self._call(self._start)

    # Connections ------------------------------------------------------------------------
    def connection(self, namespace: str = "ws", **overrides) -> Connection:
        fields = {"server": self.url, "namespace": namespace, "ca_cert": self.ca_pem,
                  "token": TOKEN}
        return Connection(**{**fields, **overrides})

    def issue_client_cert(self, name: str = "provider-admin@example.com") -> tuple[str, str]:
        """(certificate PEM, key PEM) signed by this server's CA."""
        cert = self.ca.issue_cert(name)
        return cert.cert_chain_pems[0].bytes().decode(), cert.private_key_pem.bytes().decode()

    # Objects ----------------------------------------------------------------------------
    def put(self, resource: str, namespace: str | None, name: str, body: dict | None = None):
        """Store an object, e.g. put("v1/configmaps", "ws", "x", {"data": {...}})."""
        meta = {"name": name, **({"namespace": namespace} if namespace else {})}
        obj = {"metadata": meta, **(body or {})}
        self._call(self.k.objects.__setitem__, (resource, namespace, name), obj)

    def get(self, resource: str, namespace: str | None, name: str) -> dict | None:
        key = (kmock.resource(resource), namespace, name)
        objs = self._call(lambda: dict(self.k.objects.items()))
        obj = objs.get(key)
        return None if obj is None or obj.deleted else dict(obj.raw)

    def deploy_marker(self, provider: str, namespace: str = "ws", *, legacy: bool = False) -> None:
        """The namespace and the marker of provider `provider` (its uid: `provider_uid`),
        granting everything; `legacy`: a marker from before uids, naming the provider only."""
        data = {"provider": provider}
        if not legacy:
            data.update({"provider-uid": provider_uid(provider),
                         "grants": grants(needs_service_accounts=True, needs_services=True)})
        self.put("v1/namespaces", None, namespace, {"kind": "Namespace"})
        self.put("v1/configmaps", namespace, "provider-admin-marker",
                 {"kind": "ConfigMap", "data": data})

    # Scripting --------------------------------------------------------------------------
    def respond(self, criteria, status: int, message: str | None = None, body=None):
        """Answer matching requests with `status` (a Kubernetes Status unless `body`),
        e.g. respond("get /version/", 401) or respond("get /readyz", 500, body=b"etcd failed").
        Later calls win over earlier ones. A request answered with an error changes nothing
        in the object store, as on a real API server."""
        payload = body if body is not None else _status(status, message or f"scripted {status}")

        def script():
            if status >= 400:
                self.k.refusals.append(kmock.Criteria.guess(criteria))
            return (self.k ** next(self._priority))[criteria] << status << payload
        return self._call(script)

    def redirect(self, criteria, location: str, status: int = 302):
        """Answer matching requests with a redirect to `location` (another server, say)."""
        def script():
            return (self.k ** next(self._priority))[criteria] << status << kmock.headers(
                {"Location": location}) << b""
        return self._call(script)

    def refuse(self, method: str, path: str, status: int, message: str):
        """respond() for one method and path, e.g. refuse("POST", "/api/v1/namespaces/ws/pods", 403, "no")."""
        return self.respond(f"{method.lower()} {path}", status, message)

    def slow(self, criteria, seconds: float) -> None:
        """Delay matching requests by `seconds` before answering them normally."""
        self._call(self.k.delays.append, (kmock.Criteria.guess(criteria), seconds))

    def unslow(self) -> None:
        """Undo slow() for the requests to come; the ones already waiting still wait."""
        self._call(self.k.delays.clear)

    def deny(self, verb: str, resource: str) -> None:
        """SelfSubjectAccessReviews for verb+resource answer allowed=false."""
        self.denied.add((verb, resource))

    def allow(self, verb: str, resource: str) -> None:
        """Undo deny(): reviews for verb+resource answer allowed=true again."""
        self.denied.discard((verb, resource))

    # Observation ------------------------------------------------------------------------
    @property
    def requests(self) -> list[str]:
        """"METHOD /path" of the requests served so far (the latest few hundred)."""
        return self._call(lambda: [f"{r.method.value.upper()} {r.url.path}" for r in self.k.log])

    def request_headers(self) -> list[dict]:
        return self._call(lambda: [dict(r.headers) for r in self.k.log])

    def reviews(self) -> list[tuple[str, str, str]]:
        """(verb, resource, namespace) of every SelfSubjectAccessReview asked."""
        def collect():
            return [(a.get("verb"), a.get("resource"), a.get("namespace"))
                    for r in self.k.log if r.url.path == REVIEWS
                    for a in [((r.data or {}).get("spec") or {}).get("resourceAttributes") or {}]]
        return self._call(collect)


class RealCluster:
    """A real cluster from PROVIDER_ADMIN_TEST_KUBECONFIG; objects go to a fresh namespace."""

    scripted = False

    def __init__(self, path: str, context: str | None = None):
        with open(path, encoding="utf-8") as f:
            self._conn, _ = parse_kubeconfig(f.read(), context)
        self.namespace = f"pa-test-{uuid.uuid4().hex[:8]}"

    def connection(self, namespace: str | None = None, **overrides) -> Connection:
        return dataclasses.replace(self._conn, namespace=namespace or self.namespace, **overrides)

    def cleanup(self) -> None:
        objs = bootstrap_manifest(provider_name="cleanup", namespace=self.namespace)
        undeploy(self.connection(), objs, timeout=10)


def _skip_if_real_cluster() -> None:
    if os.environ.get(REAL_KUBECONFIG_ENV):
        pytest.skip(f"scripted faults need the emulator; unset {REAL_KUBECONFIG_ENV}")


@pytest.fixture
def kube_api() -> Iterator[KubeAPI]:
    _skip_if_real_cluster()
    with KubeAPI() as api:
        yield api


@pytest.fixture
def kube_api_tls() -> Iterator[KubeAPI]:
    _skip_if_real_cluster()
    with KubeAPI(tls=True) as api:
        yield api


@pytest.fixture
def kube_target() -> Iterator[KubeAPI | RealCluster]:
    path = os.environ.get(REAL_KUBECONFIG_ENV)
    if not path:
        with KubeAPI() as api:
            yield api
        return
    cluster = RealCluster(path, os.environ.get(REAL_CONTEXT_ENV))
    try:
        yield cluster
    finally:
        cluster.cleanup()
        clear_client_cache()
