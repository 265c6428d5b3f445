"""The fuzzing campaign's parts: which route takes what, the values sent, and the checks.

Every rule of the URL map must have an entry in ROUTES (tests/test_fuzz.py fails naming a
route that has none). An entry names the forms the view reads, so that a field added to a
form is fuzzed without touching this file, plus any query parameters and raw form keys.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import re
import socket
import traceback
from urllib.parse import quote, quote_plus

import sqlalchemy as sa
from hypothesis import strategies as st
from wtforms import TextAreaField
from wtforms.fields.core import UnboundField

from provider_admin.auth.forms import LoginForm, SetupForm
from provider_admin.extensions import db
from provider_admin.forms import ConfirmForm
from provider_admin.notifications.forms import TargetForm
from provider_admin.organizations.forms import AddMemberForm, OrganizationForm
from provider_admin.providers.forms import CordonForm, DeleteForm, ProviderForm
from provider_admin.tokens.forms import TokenForm
from provider_admin.users.forms import UserForm
from provider_admin.web import MAX_ID
from provider_admin.workspaces.forms import WorkspaceForm


@dataclasses.dataclass(frozen=True)
class Route:
    forms: tuple = ()  # the form classes whose fields the view reads
    query: tuple = ()  # query parameters it reads
    raw: tuple = ()  # form keys it reads from request.form itself
    fresh: bool = False  # only does something on a site without users yet


SCOPE = ("q", "page", "provider", "fp", "status", "organization", "cordoned")
ROUTES = {
    "static": None,  # files from disk; tried with odd paths in tests/test_bad_input.py
    "auth.setup": Route((SetupForm,), fresh=True),
    "metrics.metrics": Route(),
    "auth.login": Route((LoginForm,), ("next",)),
    "auth.logout": Route(),
    "auth.home": Route(),
    "auth.break_glass": Route(),
    "oidc.login": Route(query=("next",)),
    "oidc.callback": Route(query=("code", "state", "error", "error_description")),
    "workspaces.index": Route(query=("provider",)),
    "workspaces.create": Route((WorkspaceForm,), ("organization",) + tuple("name organization provider image "
                                                                           "cpu memory disk".split())),
    "workspaces.show": Route(query=("deleting",)),
    "workspaces.pod": Route(),
    "workspaces.delete": Route((ConfirmForm,)),
    "workspaces.forget": Route((ConfirmForm,)),
    "workspaces.rebuild": Route((ConfirmForm,)),
    "embed.index": Route(query=("fp", "size")),
    "providers.status": Route(query=SCOPE + ("stale",)),
    "providers.sync_status": Route(query=SCOPE, raw=("known", "fp", "stale")),
    "health.healthz": Route(),
    "health.readyz": Route(),
    "providers.show": Route(),
    "providers.manifest": Route(),
    "providers.deploy": Route((ConfirmForm,)),
    "providers.cluster_names": Route(query=("storage_class", "service_account")),
    "providers.preview": Route((ProviderForm,)),
    "providers.hints": Route((ProviderForm,)),
    "providers.index": Route(query=SCOPE),
    "providers.create": Route((ProviderForm,), raw=("standalone",)),
    "providers.update": Route((ProviderForm,), raw=("standalone",)),
    "providers.menu": Route(),
    "providers.cordon": Route((CordonForm,)),
    "providers.uncordon": Route((ConfirmForm,)),
    "providers.check": Route((ConfirmForm,)),
    "providers.delete": Route((DeleteForm,)),
    "organizations.index": Route((OrganizationForm,)),
    "organizations.update": Route((OrganizationForm,)),
    "organizations.add_member": Route((AddMemberForm,)),
    "organizations.remove_member": Route((ConfirmForm,)),
    "users.index": Route(),
    "users.create": Route((UserForm,)),
    "users.update": Route((UserForm,)),
    "users.claims": Route(),
    "audit.index": Route(query=("page", "type")),
    "tokens.index": Route((TokenForm,)),
    "tokens.everyone": Route(),
    "tokens.revoke": Route((ConfirmForm,), raw=("back",)),
    "notifications.index": Route((TargetForm,)),
    "notifications.test": Route((ConfirmForm,)),
    "notifications.delete": Route((ConfirmForm,)),
    # The API answers these clients (session cookies, no bearer token) 401; it is fuzzed with
    # tokens from its own OpenAPI description.
    "api.me": Route(),
    **{f"api.organizations.{name}": Route() for name in (
        "list_organizations", "get_organization", "create_organization", "rename_organization", "add_member",
        "remove_member", "list_events")},
    **{f"api.users.{name}": Route() for name in ("list_users", "get_user", "create_user", "update_user")},
    **{f"api.workspaces.{name}": Route() for name in (
        "list_workspaces", "get_workspace", "create_workspace", "delete_workspace")},
    **{f"api.providers.{name}": Route() for name in (
        "list_providers", "get_provider", "get_manifest", "create_provider", "update_provider", "delete_provider",
        "check_provider", "cordon_provider", "uncordon_provider", "deploy_provider")},
    "api.openapi_json": Route(),
    "api.reference": Route(),
    "api.tokens": Route(query=("owner",)),
    "api.revoke_token": Route(),
}


def form_fields(route: Route) -> dict[str, bool]:
    """Field name -> whether it takes several lines, from the route's form classes."""
    fields = {}
    for form in route.forms:
        for name in dir(form):
            unbound = getattr(form, name)
            if isinstance(unbound, UnboundField):
                fields[name] = issubclass(unbound.field_class, TextAreaField)
    return fields | {name: False for name in route.raw}


def closed_port() -> int:
    """A local port nothing listens on: a connection there is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kubeconfig(server: str) -> str:
    return (f"apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters: [{{name: c, cluster: {{server: "
            f'"{server}"}}}}]\nusers: [{{name: u, user: {{token: abc}}}}]\n'
            "contexts: [{name: c, context: {cluster: c, user: u}}]\n")


# --- Values ---------------------------------------------------------------------------------

def nested(depth: int) -> list[str]:
    return ["[" * depth + "]" * depth, "{a: " * depth + "b" + "}" * depth, '{"a": ' * depth + "1" + "}" * depth,
            "- " * depth + "x", "[" * depth, indented(min(depth, 400))]


def indented(depth: int) -> str:
    """Block-style YAML nested `depth` levels (its size grows with the square of the depth)."""
    return "a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(depth))


ODD = [
    "", " ", "\x00", "a\x00b", "dev\n", "dev\r\n", "\r", "\t", "\x1b[31m", "\x7f", "\u0085", "\u2028",
    "\ufeff", "\u202eevil", "e\u0301", "🚀", "👩‍👩‍👧", "ｆｕｌｌ", "İ", "ß", "\uffff", "\U0010ffff",
    "-1", "0", "1", "2147483647", "2147483648", "9223372036854775808", "9" * 40, "-" + "9" * 40, "1e308",
    "NaN", "Infinity", "0x10", "1.5", "１２", "\u0661",
    "null", "true", "[]", "{}", '{"a": 1}', "[1, 2]", '"x"', "{{ .Username }}", "{{", "}}", "{{ .Nope }}",
    "https://[::1]:99999", "https://[::1]", "http://user:pw@host/?q#f", "https://169.254.169.254",
    "javascript:alert(1)", "//evil.example", "/\\evil", "../../etc/passwd", "%00", "%ff", "<script>x</script>",
    "' OR 1=1 --", "a" * 300, "A" * 5000,
]
RAW_BYTES = [b"\xff\xfe", b"\xc0\xaf", b"\xc0\x80", b"\xed\xa0\x80", b"\xe2\x82", b"a\x00\xff", b"\xf4\x90\x80\x80"]


@functools.lru_cache(maxsize=None)
def values(valid: tuple[str, ...], long_text: int, depth: int, long_sizes: tuple[int, ...] = (1,)):
    """A value for a form field or a query parameter: text, bytes (sent as they are, not
    necessarily UTF-8), a file, or several of them."""
    text = st.one_of(
        st.sampled_from(list(valid) + ODD + nested(depth)),
        st.text(max_size=40),
        st.builds(lambda c, n: c * n, st.sampled_from(["x", "é", "\x00", "\n", "[", "🚀"]),
                  st.sampled_from([long_text + n for n in long_sizes])),
    )
    raw = st.one_of(st.sampled_from(RAW_BYTES), st.binary(max_size=40))
    upload = st.builds(lambda content, name: ("file", content, name), st.binary(max_size=200),
                       st.sampled_from(["x.txt", "", "config", "a\x00b", "🚀.yaml", "../../x"]))
    one = st.one_of(st.sampled_from(valid) if valid else text, text, text, raw, upload)
    return st.one_of(one, st.lists(one, min_size=2, max_size=3))


def sweep(limit: int, depth: int) -> list:
    """One value of each class of bad input, sent in every field of every route at once."""
    return ["a\x00b", "dev\n", "x\x1by", ("file", b"text", "x.txt"), "x" * (limit + 1), "[" * depth,
            "{a: " * depth, "9" * 40, "-1", b"\xff\xfe\xc0\xaf", "e\u0301\U0001f680\u202e\ufeff",
            "https://[::1", ""]


QUERY_TEXT = 2000  # characters of the longest generated query value

ID_SEGMENTS = ["0", "-1", str(MAX_ID), str(MAX_ID + 1), "9" * 20, "9" * 5000, "0" * 20 + "1", "%00", "%FF",
               "1%0A", "1%00", "\u0661", "%F0%9F%9A%80", "1.0", "abc", "%C0%AF", "..", "1;x", "1%2F2"]


def _quoted(value: str | bytes) -> str:
    return _quoted_long(value) if len(value) > 1000 else quote_plus(value)


@functools.lru_cache(maxsize=16)
def _quoted_long(value: str | bytes) -> str:
    return quote_plus(value)  # the long generated values repeat: each is encoded once


def urlencoded(pairs: list[tuple[str, object]]) -> str:
    return "&".join(f"{_quoted(k)}={_quoted(v if isinstance(v, (str, bytes)) else str(v))}" for k, v in pairs)


def request_body(fields: list[tuple[str, object]], kind: str):
    """(data, content type) for the test client: form-encoded bytes (which may hold any bytes),
    multipart when a file is among the values, JSON or raw bytes."""
    if kind == "json":
        return json.dumps(dict((k, v if isinstance(v, str) else repr(v)) for k, v in fields)).encode(), \
            "application/json"
    if kind == "raw":
        return b"".join(v if isinstance(v, bytes) else str(v).encode("utf-8", "surrogatepass") for _, v in fields), \
            "application/octet-stream"
    if any(isinstance(v, tuple) for _, v in fields) or kind == "multipart":
        data = {}
        for key, value in fields:
            if isinstance(value, tuple):
                value = (io.BytesIO(value[1]), value[2])
            elif isinstance(value, bytes):
                value = (io.BytesIO(value), "")
            data.setdefault(key, []).append(value)
        return data, "multipart/form-data"
    return urlencoded(fields).encode(), "application/x-www-form-urlencoded"


# --- The database, before and after ---------------------------------------------------------

def snapshot() -> dict[str, list[dict]]:
    with db.engine.connect() as conn:
        return {table.name: [dict(row) for row in conn.execute(table.select()).mappings()]
                for table in db.metadata.sorted_tables}


def fingerprint(tables: dict[str, list[dict]]) -> dict[str, str]:
    """A hash of each table's content, independent of row order."""
    return {name: hashlib.sha256("\n".join(sorted(repr(sorted(r.items())) for r in rows)).encode()).hexdigest()
            for name, rows in tables.items()}


def restore(tables: dict[str, list[dict]]) -> None:
    """Put every table back as it was in `tables`."""
    db.session.remove()
    with db.engine.begin() as conn:
        for table in reversed(db.metadata.sorted_tables):
            conn.execute(table.delete())
        for table in db.metadata.sorted_tables:
            if tables[table.name]:
                conn.execute(table.insert(), tables[table.name])
        # Linking a provider to its organizations again bumped its display_version (the
        # database does, migration 0010): put back the versions as they were.
        providers = db.metadata.tables["providers"]
        if tables["providers"]:
            conn.execute(providers.update().where(providers.c.id == sa.bindparam("row_id"))
                         .values(display_version=sa.bindparam("row_version"),
                                 updated_at=sa.bindparam("row_updated_at")),
                         [{"row_id": row["id"], "row_version": row["display_version"],
                           "row_updated_at": row["updated_at"]} for row in tables["providers"]])


def drain_background_work(app) -> None:
    """Let workspace builds and teardowns finish before the database is looked at."""
    pool = app.extensions.pop("workspace_builds", None)
    if pool is not None:
        pool.shutdown(wait=True)


@dataclasses.dataclass
class Finding:
    route: str
    method: str
    url: str
    detail: str

    def __str__(self) -> str:
        return f"{self.method} {self.url} ({self.route}): {self.detail}"


def describe_exception(error: BaseException) -> tuple[str, tuple[str, str]]:
    """What went wrong, and where: the innermost frame in the app (its file, relative to the
    package, and function)."""
    frames = traceback.extract_tb(error.__traceback__)
    own = [f for f in frames if "/provider_admin/" in f.filename] or frames
    where = own[-1]
    file = where.filename.rsplit("/provider_admin/", 1)[-1]
    return f"{type(error).__name__}: {str(error)[:200]} at {file}:{where.lineno} `{where.line}`", \
        (file, where.name)


FIELD_ERROR = re.compile(r'class="error"|aria-invalid="true"|class="flash error"|role="alert"')


def quote_segment(segment: str) -> str:
    """A path segment as sent: already-percent-encoded text is kept as it is."""
    return segment if "%" in segment else quote(segment, safe="")
