"""Branding by configuration (SPEC §9): site name, logo and accent colour, checked at start,
allowed by the Content-Security-Policy exactly, and readable (WCAG contrast)."""
import base64
import hashlib
import re

import pytest

from provider_admin import ROOT, branding

from .test_embed import make_app, someone  # noqa: F401  (fixtures)
from .test_security_headers import assert_secure_headers, policy


@pytest.fixture
def branded(make_app, someone):
    """An app with the given settings, whose /login is the sign-in page."""
    return make_app


# Contrast ------------------------------------------------------------------------------------

@pytest.mark.parametrize("first, second, ratio", [
    ("#000000", "#ffffff", 21.0), ("#ffffff", "#ffffff", 1.0), ("#777777", "#ffffff", 4.48),
    ("#767676", "#ffffff", 4.54), ("#0000ff", "#ffffff", 8.59), ("#ff0000", "#000000", 5.25),
    ("#ff0000", "#ffffff", 4.0),
])
def test_contrast_ratios_match_wcag(first, second, ratio):
    assert branding.contrast_ratio(first, second) == pytest.approx(ratio, abs=0.01)
    assert branding.contrast_ratio(second, first) == pytest.approx(ratio, abs=0.01)


@pytest.mark.parametrize("accent, text", [
    ("#ffcc00", "#000000"), ("#0b5fff", "#ffffff"), ("#16202e", "#ffffff"), ("#7fffd4", "#000000"),
    ("#757575", "#ffffff"), ("#767676", "#000000"),  # the greys either side of the crossing
])
def test_the_text_on_the_accent_is_black_or_white_whichever_reads_better(accent, text):
    assert branding.readable_text_on(accent) == text


def test_every_accent_gets_text_of_at_least_4_5_to_1():
    for value in range(0, 0x1000000, 0x010307):  # ~5,000 colours across the cube
        color = f"#{value:06x}"
        assert branding.contrast_ratio(color, branding.readable_text_on(color)) >= 4.5, color


# Validation at start ---------------------------------------------------------------------------

@pytest.mark.parametrize("setting, value", [
    ("SITE_NAME", ""), ("SITE_NAME", "   "), ("SITE_NAME", "Two\nlines"), ("SITE_NAME", "x" * 61),
    ("SITE_NAME", "Bell\x07"),
    ("LOGO_URL", "http://intranet.example.com/logo.svg"), ("LOGO_URL", "javascript:alert(1)"),
    ("LOGO_URL", "//evil.example/logo.svg"), ("LOGO_URL", "https://user:pw@intranet.example.com/l.svg"),
    ("LOGO_URL", "https://intranet.example.com/a logo.svg"), ("LOGO_URL", "logo.svg"),
    ("LOGO_URL", "https://intranet.example.com:port/l.svg"), ("LOGO_URL", 'https://x.example/"onerror=a'),
    ("LOGO_URL", "data:image/svg+xml,<svg/>"), ("LOGO_URL", "https:///logo.svg"),
    ("ACCENT_COLOR", "blue"), ("ACCENT_COLOR", "#fff"), ("ACCENT_COLOR", "#12345g"),
    ("ACCENT_COLOR", "#1234567"), ("ACCENT_COLOR", "#123456;}body{display:none"),
])
def test_a_wrong_setting_stops_the_start_naming_it(branded, setting, value):
    with pytest.raises(ValueError, match=f"PROVIDER_ADMIN_{setting}"):
        branded(**{setting: value})


def test_the_defaults_brand_nothing(branded):
    app = branded()
    response = app.test_client().get("/login")
    assert_secure_headers(response)  # style-src and img-src exactly 'self' (and data: images)
    assert policy(response)["img-src"] == "'self' data:"
    assert "<style" not in response.text and "brand-logo" not in response.text
    assert "<title>Sign in · Provider Admin</title>" in response.text
    assert re.search(r'<a class="brand" href="/">Provider Admin</a>', response.text)


# What the settings do --------------------------------------------------------------------------

def test_the_site_name_is_in_the_title_and_the_top_bar_escaped(branded):
    app = branded(SITE_NAME="Platform <Ops> & Co")
    page = app.test_client().get("/login").text
    assert "<title>Sign in · Platform &lt;Ops&gt; &amp; Co</title>" in page
    assert '<a class="brand" href="/">Platform &lt;Ops&gt; &amp; Co</a>' in page
    assert "<Ops>" not in page


def test_a_logo_elsewhere_is_allowed_by_img_src_and_nothing_more(branded):
    app = branded(LOGO_URL="https://cdn.intranet.example:8443/brand/logo.svg?v=2")
    response = app.test_client().get("/login")
    assert policy(response)["img-src"] == "'self' data: https://cdn.intranet.example:8443"
    assert '<img class="brand-logo" src="https://cdn.intranet.example:8443/brand/logo.svg?v=2" alt="">' \
        in response.text
    assert policy(response)["default-src"] == "'self'" and policy(response)["style-src"] == "'self'"


def test_a_logo_on_this_site_needs_no_other_origin(branded):
    response = branded(LOGO_URL="/static/logo.svg").test_client().get("/login")
    assert policy(response)["img-src"] == "'self' data:"
    assert 'src="/static/logo.svg"' in response.text


def test_the_accent_comes_as_one_inline_style_allowed_by_its_hash(branded):
    app = branded(ACCENT_COLOR="#FFCC00")
    client = app.test_client()
    for url in ("/login", "/embed/providers"):
        response = client.get(url)
        styles = re.findall(r"<style>(.*?)</style>", response.text, re.S)
        assert styles == [":root{--brand:#ffcc00;--brand-text:#000000}"]
        digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()
        assert policy(response)["style-src"] == f"'self' 'sha256-{digest}'"
        assert "unsafe" not in response.headers["Content-Security-Policy"]


def test_the_stylesheet_colours_the_top_bar_and_buttons_from_the_brand():
    text = (ROOT / "static" / "css" / "app.css").read_text()
    assert re.search(r"\.topbar \{[^}]*background: var\(--brand, #16202e\); color: var\(--brand-text, #fff\)", text)
    assert re.search(r"button\.primary \{[^}]*background: var\(--brand, var\(--accent\)\)[^}]*"
                     r"color: var\(--brand-text, #fff\)", text)
