"""Bad input never gives a 5xx (SPEC §8): each example as it was found, and its neighbours.
The fuzzing campaign (tests/test_fuzz.py) covers every route; these are the plain regressions."""
import io
import json
import re
from urllib.parse import unquote

import pytest
import sqlalchemy as sa

from provider_admin.extensions import db
from provider_admin.forms import FILE_REFUSED, TOO_DEEP
from provider_admin.models import AuditEvent, Organization, Provider, Role, User, Workspace
from provider_admin.validators import DNS1123_LABEL, DNS1123_SUBDOMAIN
from provider_admin.web import MAX_ID

from .conftest import field_error

TEN_MB = 10 * 1024 * 1024


def count(model) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


@pytest.fixture
def admin(actions):
    return actions.login(Role.ADMIN.value, username="boss")


# --- Numbers in URLs ------------------------------------------------------------------------

@pytest.mark.parametrize("number", ["99999999999999999999", str(MAX_ID + 1), str(2**63), "0",
                                    "0" * 30 + "1" + "0" * 30, "9" * 5000, "\u0661"])
@pytest.mark.parametrize("path", ["/manage/providers/{}/edit", "/manage/providers/{}",
                                  "/manage/providers/{}/manifest.yaml", "/workspaces/{}",
                                  "/manage/organizations/{}", "/manage/users/{}/edit",
                                  "/manage/organizations/1/members/{}/remove"])
def test_out_of_range_ids_are_404(admin, client, make_org, path, number):
    make_org("Acme")
    response = client.get(path.format(number))
    assert response.status_code in (404, 405), response.status_code


@pytest.mark.parametrize("method, path", [
    ("get", "/manage/providers/999/edit"), ("get", "/manage/users/999/edit"), ("get", "/manage/organizations/999"),
    ("get", "/workspaces/999"), ("get", "/workspaces/?provider=999"),
    ("post", "/manage/organizations/{org}/members/999/remove"),
])
def test_an_id_in_range_that_names_nothing_is_404(admin, actions, make_org, method, path):
    path = path.format(org=make_org("Acme").id)
    response = actions.post(path) if method == "post" else actions.client.get(path)
    assert response.status_code == 404


def test_the_largest_id_is_looked_up_and_missing(admin, client):
    assert client.get(f"/manage/providers/{MAX_ID}/edit").status_code == 404
    assert client.get(f"/manage/providers/{MAX_ID:020d}").status_code == 404  # leading zeros


@pytest.mark.parametrize("page", ["99999999999999999999", "-3", "0", "x", "1e9", "9" * 5000, "\u0662"])
@pytest.mark.parametrize("path", ["/manage/audit/", "/manage/providers/", "/manage/providers/status"])
def test_page_numbers_out_of_range_are_clamped(admin, client, make_provider, path, page):
    make_provider("east")
    response = client.get(path, query_string={"page": page})
    assert response.status_code in (200, 204), response.status_code


@pytest.mark.parametrize("number", ["99999999999999999999", str(MAX_ID + 1)])
def test_a_provider_id_past_the_range_in_the_query_is_missing(admin, client, number):
    assert client.get("/workspaces/", query_string={"provider": number}).status_code == 404
    assert client.get("/manage/providers/status", query_string={"provider": number}).status_code == 200
    response = client.post("/manage/providers/status", query_string={"provider": number},
                           headers={"X-CSRFToken": admin and _token(client)})
    assert response.status_code == 200


@pytest.mark.parametrize("number", ["-1", "0", "abc"])
def test_a_provider_id_that_is_no_number_in_the_query_is_ignored(admin, client, number):
    assert client.get("/workspaces/", query_string={"provider": number}).status_code == 200


def _token(client) -> str:
    return re.search(r'"X-CSRFToken": "([^"]+)"', client.get("/workspaces/").text).group(1)


# --- Request size ---------------------------------------------------------------------------

class CountingStream(io.RawIOBase):
    """A body of `size` bytes that counts how much of it the app reads."""

    def __init__(self, size: int):
        self.size, self.position, self.read_bytes = size, 0, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:  # the test client measures the body by seeking to its end
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.position = offset if whence == 0 else self.size + offset if whence == 2 else self.position + offset
        return self.position

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.size - self.position)
        buffer[:n] = b"a" * n
        self.position += n
        self.read_bytes += n
        return n


@pytest.mark.parametrize("htmx", [False, True])
@pytest.mark.parametrize("path", ["/login", "/manage/providers/new", "/logout", "/workspaces/"])
def test_a_10_mb_body_is_refused_unread_even_signed_out(client, path, htmx):
    body = CountingStream(TEN_MB)
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Content-Length": str(TEN_MB)}
    if htmx:
        headers["HX-Request"] = "true"
    response = client.post(path, input_stream=body, headers=headers)
    assert response.status_code == 413
    assert body.read_bytes == 0
    assert "too large" in response.text
    assert ('id="flash' in response.text or "HX-Retarget" in response.headers) if htmx else "<html" in response.text


@pytest.mark.parametrize("app_config", [{"MAX_BODY_BYTES": 2000}])
def test_max_body_bytes_sets_the_limit(app, client, actions, app_config):
    assert app.config["MAX_CONTENT_LENGTH"] == app.config["MAX_FORM_MEMORY_SIZE"] == 2000
    actions.user(Role.ADMIN.value)
    token = actions.form_token("/login")
    assert client.post("/login", data={"csrf_token": token, "email": "x" * 1000}).status_code == 422
    assert client.post("/login", data={"csrf_token": token, "email": "x" * 2000}).status_code == 413


def test_a_body_without_a_length_is_cut_at_the_limit(app, client):
    body = CountingStream(TEN_MB)
    # As a server that de-chunks the body passes it on: no length, the input marked terminated.
    response = client.post("/login", input_stream=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 413
    assert body.read_bytes <= app.config["MAX_BODY_BYTES"] + 64 * 1024


def test_a_body_without_a_length_within_the_limit_is_read_whole(client, actions):
    from urllib.parse import urlencode

    from .conftest import PASSWORD

    user = actions.user(Role.ADMIN.value)
    body = urlencode({"email": user.email, "password": PASSWORD, "csrf_token": actions.form_token("/login"),
                      "padding": "x" * 500_000}).encode()
    response = client.post("/login", input_stream=io.BytesIO(body), headers={
        "Content-Type": "application/x-www-form-urlencoded", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 303


def test_a_body_within_the_limit_is_read(admin, actions):
    big = "x" * 200_000  # under MAX_FORM_FIELD_BYTES: the field's own Length says no
    response = actions.post("/manage/organizations/", {"name": big})
    assert response.status_code == 422
    assert "64 characters" in field_error(response.text, "name") or field_error(response.text, "name")


@pytest.mark.parametrize("app_config", [{"MAX_FORM_FIELD_BYTES": 1000}])
def test_a_field_over_max_form_field_bytes_is_a_field_error(admin, actions, app_config):
    response = actions.post("/manage/providers/new", {"name": "east", "namespace": "ws",
                                                      "cluster_address": "https://k8s.invalid",
                                                      "token": "t", "kubeconfig": "é" * 600})
    assert response.status_code == 422
    assert "too long" in field_error(response.text, "kubeconfig")
    assert "1000 bytes" in field_error(response.text, "kubeconfig")
    assert count(Provider) == 0


# --- Text where text is expected ------------------------------------------------------------

@pytest.mark.parametrize("htmx", [False, True])
def test_a_file_where_text_is_expected_is_refused_at_the_field(admin, actions, htmx):
    response = actions.post("/manage/organizations/", {"name": (io.BytesIO(b"Acme"), "name.txt")},
                            htmx=htmx, content_type="multipart/form-data")
    assert response.status_code == 422
    assert field_error(response.text, "name") == FILE_REFUSED
    assert count(Organization) == 0


def test_a_file_in_a_kubeconfig_or_a_checkbox_list_is_refused(admin, actions, make_org):
    org = make_org("Acme")
    response = actions.post("/manage/providers/new", {
        "name": "east", "namespace": "ws", "cluster_address": "https://k8s.invalid", "token": "t",
        "kubeconfig": (io.BytesIO(b"apiVersion: v1"), "config"),
        "organizations": (io.BytesIO(str(org.id).encode()), "org")}, content_type="multipart/form-data")
    assert response.status_code == 422
    assert field_error(response.text, "kubeconfig") == FILE_REFUSED
    assert count(Provider) == 0


@pytest.mark.parametrize("value, message", [
    ("Acme\x00", "U+0000"), ("Ac\x1bme", "U+001B"), ("Acme\x7f", "U+007F"), ("Acme\u0085", "U+0085"),
    ("Acme\n", "single line"), ("Ac\rme", "single line"),
])
def test_control_characters_and_nul_are_refused_and_nothing_is_stored(admin, actions, value, message):
    response = actions.post("/manage/organizations/", {"name": value})
    assert response.status_code == 422
    assert message in field_error(response.text, "name")
    assert count(Organization) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)
                             .where(AuditEvent.target_type != "sign_in")) == 0


def test_multi_line_fields_take_tabs_and_line_breaks_but_not_nul(admin, actions):
    good = actions.post("/manage/providers/preview", {"pod_node_selector": '{\r\n\t"a": "b"\n}'}, htmx=True)
    assert good.status_code == 200 and "Pod node selector" not in good.text
    bad = actions.post("/manage/providers/preview", {"pod_node_selector": '{"a": "b\x00"}'}, htmx=True)
    assert bad.status_code == 200 and "U+0000" in bad.text


@pytest.mark.parametrize("form, field", [
    ({"email": "a@example.com\x00", "password": "x"}, "email"),
    ({"email": "a@example.com", "password": "pass\x00word"}, "password"),
])
def test_nul_at_sign_in_is_a_field_error_not_a_lookup(client, actions, form, field):
    actions.user(Role.ADMIN.value)  # setup done: /login shows the form
    token = actions.form_token("/login")
    response = client.post("/login", data={**form, "csrf_token": token})
    assert response.status_code == 422
    assert "U+0000" in field_error(response.text, field)


def test_lone_surrogates_are_refused(app):
    from provider_admin.forms import text_problem

    assert "Unicode" in text_problem("a\ud800b", multiline=True, limit=100)
    assert text_problem("grüße 🚀 \u202e\u0301", multiline=False, limit=100) is None


def test_a_json_body_is_not_taken_for_the_form(admin, actions, client):
    response = client.post("/manage/organizations/", data=json.dumps("Acme"),
                           headers={"Content-Type": "application/json", "X-CSRFToken": actions.token()})
    assert response.status_code == 422
    deep = "[" * 100_000 + "]" * 100_000
    response = client.post("/manage/organizations/", data=deep,
                           headers={"Content-Type": "application/json", "X-CSRFToken": actions.token()})
    assert response.status_code == 422
    assert count(Organization) == 0


# --- Patterns and trailing newlines ---------------------------------------------------------

@pytest.mark.parametrize("pattern", [DNS1123_LABEL, DNS1123_SUBDOMAIN])
def test_name_patterns_refuse_a_trailing_newline(pattern):
    assert pattern.match("dev")
    assert not pattern.match("dev\n")


def test_every_form_pattern_refuses_a_trailing_newline():
    from provider_admin.auth.forms import USERNAME
    from provider_admin.kube.manifest import DNS_LABEL
    from provider_admin.organizations.forms import OrganizationForm
    from provider_admin.workspaces.forms import CPU, IMAGE, SIZE

    org_name = next(v for v in OrganizationForm.name.kwargs["validators"] if hasattr(v, "regex"))
    for regex, good in [(USERNAME.regex, "ada"), (CPU.regex, "2"), (SIZE.regex, "4Gi"),
                        (IMAGE.regex, "codercom/enterprise-base:ubuntu"), (org_name.regex, "Acme"),
                        (DNS_LABEL, "ws")]:
        assert regex.match(good) and not regex.match(good + "\n"), regex.pattern


@pytest.fixture
def member_with_provider(actions, make_org, make_provider):
    user = actions.login(Role.MEMBER.value)
    org = make_org("Acme", members=[user])
    provider = make_provider("east", organizations=[org], status="ready")
    return org, provider


@pytest.mark.parametrize("field, value", [("name", "dev\n"), ("cpu", "2\n"), ("memory", "4Gi\n"),
                                          ("image", "busybox\n"), ("name", "dev\x00")])
def test_a_workspace_field_with_a_trailing_newline_or_nul_is_refused(actions, member_with_provider,
                                                                       field, value):
    org, provider = member_with_provider
    form = {"name": "dev", "organization": org.id, "provider": provider.id,
            "image": "busybox", "cpu": "1", "memory": "1Gi", "disk": "1Gi", field: value}
    response = actions.post("/workspaces/new", form)
    assert response.status_code == 422
    assert field_error(response.text, field)
    assert count(Workspace) == 0


def test_a_username_with_a_trailing_newline_is_refused(admin, actions):
    response = actions.post("/manage/users/new", {"email": "ada@example.com", "username": "ada\n",
                                                  "password": "long enough", "role": "member"})
    assert response.status_code == 422
    assert field_error(response.text, "username")
    assert count(User) == 1


# --- Deep nesting ---------------------------------------------------------------------------

@pytest.mark.parametrize("kubeconfig", ["[" * 50_000, "a: " * 20_000 + "b", "{a: " * 20_000])
def test_a_deeply_nested_kubeconfig_is_a_field_error(admin, actions, kubeconfig):
    response = actions.post("/manage/providers/new", {"name": "east", "namespace": "ws",
                                                      "kubeconfig": kubeconfig})
    assert response.status_code == 422
    assert field_error(response.text, "kubeconfig")
    assert count(Provider) == 0


def test_a_deeply_nested_scheduling_field_is_a_field_error(admin, actions):
    deep = "[" * 30_000 + "]" * 30_000
    response = actions.post("/manage/providers/new", {"name": "east", "namespace": "ws",
                                                      "cluster_address": "https://k8s.invalid",
                                                      "token": "t", "affinity": deep})
    assert response.status_code == 422
    assert "nested too deeply" in field_error(response.text, "affinity")


def test_a_validator_that_recurses_too_deeply_is_a_field_error(app):
    from wtforms import StringField

    from provider_admin.forms import BaseForm

    def endless(form, field):
        endless(form, field)

    class Deep(BaseForm):
        text = StringField(validators=[endless])

    with app.test_request_context(method="POST", data={"text": "x"}):
        form = Deep(meta={"csrf": False})
        assert not form.validate()
        assert form.text.errors == [TOO_DEEP]


# --- Odd text in URLs and query strings -----------------------------------------------------

@pytest.mark.parametrize("url", [
    "/manage/providers/%00", "/manage/providers/%FF/edit", "/workspaces/%C0%AF", "/static/%00",
    "/static/..%2F..%2Fapp.py", "/static/%F0%9F%9A%80", "/manage/organizations/1%CC%81",
    "/manage/providers/?q=%FF%FE", "/manage/providers/?q=%F0%9F%9A%80", "/manage/providers/?q=e%CC%81",
    "/manage/audit/?type=%ED%A0%80", "/login?next=%0D%0ALocation:%20http://evil",
])
def test_odd_encodings_in_urls_never_give_a_5xx(admin, client, url):
    assert client.get(url).status_code < 500


@pytest.mark.parametrize("query", ["q=a%00b", "type=%01", "page=1%00", "q%00=a", "next=%1B"])
def test_control_characters_in_a_query_string_are_a_400(admin, client, query):
    response = client.get(f"/manage/audit/?{query}")
    assert response.status_code == 400
    assert "control characters" in response.text


# --- Download names -------------------------------------------------------------------------

@pytest.mark.parametrize("name, ascii_name, utf8_name", [
    ('east"; filename="evil.exe', "provider-admin-east-filename-evil.exe.yaml",
     'provider-admin-east"; filename="evil.exe.yaml'),
    ("east\r\nSet-Cookie: x=1", "provider-admin-east--Set-Cookie-x-1.yaml",
     "provider-admin-east--Set-Cookie: x=1.yaml"),
    ("../../etc/passwd", "provider-admin-..-..-etc-passwd.yaml", "provider-admin-..-..-etc-passwd.yaml"),
    ("Grüße 🚀", "provider-admin-Grue.yaml", "provider-admin-Grüße 🚀.yaml"),
    ("east\u202elmay.exe", "provider-admin-east-lmay.exe.yaml", "provider-admin-east-lmay.exe.yaml"),
    ("east\u200f", "provider-admin-east.yaml", "provider-admin-east.yaml"),
])
def test_the_manifest_download_name_is_safe(admin, client, make_provider, name, ascii_name, utf8_name):
    provider = make_provider(name)
    response = client.get(f"/manage/providers/{provider.id}/manifest.yaml")
    assert response.status_code == 200
    header = response.headers["Content-Disposition"]
    assert all(32 <= ord(c) < 127 for c in header), header
    match = re.fullmatch(r'attachment; filename="([A-Za-z0-9._-]+)"; filename\*=UTF-8\'\'([A-Za-z0-9%._~-]+)', header)
    assert match, header
    assert match.group(1) == ascii_name
    assert unquote(match.group(2)) == utf8_name


# --- Found before the fuzzing campaign -----------------------------------------------------------------

@pytest.mark.parametrize("field", ["cluster_address", "access_url"])
def test_an_unclosed_ipv6_address_is_a_field_error(admin, actions, field):
    data = {"name": "east", "namespace": "ws", "cluster_address": "https://k8s.invalid", "token": "t",
            field: "https://[::1"}
    response = actions.post("/manage/providers/new", data)
    assert response.status_code == 422
    assert field_error(response.text, field)


# --- Found by the fuzzing campaign ----------------------------------------------------------

@pytest.mark.parametrize("provider", ["1", "99999999999999999999"])
def test_the_provider_list_ignores_a_provider_in_its_query(admin, client, make_provider, provider):
    """/manage/providers/?provider=1 answered 500: the list took the one-provider poll scope."""
    make_provider("east")
    response = client.get("/manage/providers/", query_string={"provider": provider})
    assert response.status_code == 200
    assert "east" in response.text


@pytest.mark.parametrize("value", ["y\x00", (io.BytesIO(b"y"), "x.txt")])
def test_a_refused_delete_checkbox_shows_why_and_deletes_nothing(admin, actions, make_provider, value):
    """The delete dialog answered 422 without saying why: its checkbox showed no errors."""
    provider = make_provider("west")
    response = actions.post(f"/manage/providers/{provider.id}/delete", {"remove_bootstrap": value},
                            content_type="multipart/form-data")
    assert response.status_code == 422
    assert field_error(response.text, "remove_bootstrap")
    assert count(Provider) == 1
