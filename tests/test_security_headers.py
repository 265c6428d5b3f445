"""Security headers on every answer (SPEC §8): a Content-Security-Policy without inline scripts
or eval, frame-ancestors from a setting, nosniff, a Referrer-Policy, no-store for anything but
static files; and templates that need nothing the policy forbids."""
import re
from pathlib import Path

import pytest

from provider_admin.models import Role

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def policy(response) -> dict[str, str]:
    header = response.headers["Content-Security-Policy"]
    return {part.split()[0]: " ".join(part.split()[1:]) for part in header.split(";") if part.strip()}


def assert_secure_headers(response, static=False):
    csp = policy(response)
    assert csp["script-src"] == "'self'" and csp["default-src"] == "'self'" and csp["style-src"] == "'self'"
    assert "unsafe" not in response.headers["Content-Security-Policy"]
    assert csp["object-src"] == "'none'" and csp["base-uri"] == "'none'" and csp["form-action"] == "'self'"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    if static:
        assert "no-store" not in response.headers.get("Cache-Control", "")
    else:
        assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("role", [None, Role.MEMBER.value, Role.MANAGER.value, Role.ADMIN.value])
def test_every_kind_of_answer_carries_the_headers(client, actions, make_provider, role):
    actions.user(Role.ADMIN.value, username="first")
    if role:
        actions.login(role)
    provider = make_provider()
    for url in ("/login", "/workspaces/", "/manage/providers/", f"/manage/providers/{provider.id}",
                f"/manage/providers/{provider.id}/manifest.yaml", "/no-such-page", "/manage/users/"):
        response = client.get(url)
        assert_secure_headers(response)
        assert policy(response)["frame-ancestors"] == "'self'"
        assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
        fragment = client.get(url, headers={"HX-Request": "true"})
        assert_secure_headers(fragment)
    assert_secure_headers(client.get("/static/js/app.js"), static=True)


def test_refusals_carry_them_too(client, actions):
    actions.login(Role.MEMBER.value)
    assert_secure_headers(client.post("/manage/organizations/", data={"name": "x"}))  # no CSRF token: 400
    assert_secure_headers(client.get("/manage/organizations/"))  # 403


class TestFramedByAPortal:
    @pytest.fixture
    def app_config(self):
        return {"FRAME_ANCESTORS": "'self' https://portal.example.com"}

    def test_the_portal_may_frame_it(self, client, actions):
        actions.user()
        response = client.get("/login")
        assert policy(response)["frame-ancestors"] == "'self' https://portal.example.com"
        assert "X-Frame-Options" not in response.headers  # it cannot name another origin


INLINE_HANDLER = re.compile(r"\son[a-z]+\s*=", re.I)


@pytest.mark.parametrize("template", sorted(str(p.relative_to(TEMPLATES)) for p in TEMPLATES.rglob("*.html")))
def test_templates_need_no_inline_script_style_or_eval(template):
    text = (TEMPLATES / template).read_text()
    assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", text), "inline <script>"
    assert not INLINE_HANDLER.search(text), "inline event handler"
    assert not re.search(r"[\"'{]\s*js:|javascript:|hx-on", text), "evaluated expression"
    assert not re.search(r"\sstyle\s*=", text) and "<style" not in text, "inline style"


def test_htmx_is_configured_not_to_evaluate_or_inject(client, actions):
    actions.login(Role.MEMBER.value)
    page = client.get("/workspaces/").text
    config = re.search(r'<meta name="htmx-config" content=\'([^\']+)\'>', page).group(1)
    assert '"allowEval": false' in config and '"allowScriptTags": false' in config
    assert '"includeIndicatorStyles": false' in config
