"""Light branding by configuration: the site's name, a logo and an accent colour, checked at
start (a wrong value stops the app with the setting's name, never a broken page).

The accent colours the top bar and the primary buttons through two CSS custom properties,
set in one inline <style> whose SHA-256 the Content-Security-Policy allows (headers.py): no
extra request, and no other inline style gets through. The text on the accent is black or
white, whichever contrasts more; one of the two always reaches WCAG's 4.5:1.
"""
from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Flask
from markupsafe import Markup

from .forms import text_problem

SITE_NAME_MAX = 60
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
BLACK, WHITE = "#000000", "#ffffff"


@dataclass(frozen=True)
class Brand:
    site_name: str = "Provider Admin"
    logo_url: str | None = None
    logo_origin: str | None = None  # for the CSP's img-src; None for a logo on this site
    accent: str | None = None
    accent_text: str | None = None

    @property
    def style_text(self) -> str | None:
        """The inline <style>'s text; the CSP allows exactly this."""
        if self.accent is None:
            return None
        return f":root{{--brand:{self.accent};--brand-text:{self.accent_text}}}"

    @property
    def style_hash(self) -> str | None:
        text = self.style_text
        return None if text is None else "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()

    @property
    def style(self) -> Markup:
        """The <style> element for the page's head (empty without an accent)."""
        return Markup(f"<style>{self.style_text}</style>") if self.style_text else Markup("")


def relative_luminance(color: str) -> float:
    """WCAG 2's relative luminance of a #rrggbb colour."""
    channels = [int(color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(first: str, second: str) -> float:
    """WCAG 2's contrast ratio of two #rrggbb colours, from 1 to 21."""
    lighter, darker = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def readable_text_on(background: str) -> str:
    """Black or white, whichever contrasts more with the background."""
    return BLACK if contrast_ratio(background, BLACK) >= contrast_ratio(background, WHITE) else WHITE


def site_name(value) -> str:
    name = str(value if value is not None else "").strip()
    problem = text_problem(name, multiline=False, limit=SITE_NAME_MAX * 4)
    if not name or problem or len(name) > SITE_NAME_MAX:
        raise ValueError(f"PROVIDER_ADMIN_SITE_NAME: give a name of 1 to {SITE_NAME_MAX} characters on "
                         "one line, without control characters.")
    return name


def logo(value) -> tuple[str | None, str | None]:
    """The logo's URL and the origin the CSP must allow for it (None for a path on this site)."""
    url = str(value or "").strip()
    if not url:
        return None, None
    refusal = ValueError("PROVIDER_ADMIN_LOGO_URL: give an https URL (https://intranet.example.com/logo.svg) "
                         "or a path on this site (/static/logo.svg), without spaces, quotes or credentials.")
    if text_problem(url, multiline=False, limit=2048) or re.search(r"[\s\"'<>\\`]", url) or len(url) > 2048:
        raise refusal
    if url.startswith("/") and not url.startswith("//"):
        return url, None
    try:
        parts = urlsplit(url)
        parts.port  # a port that is not a number raises here
    except ValueError:
        raise refusal from None
    if parts.scheme.lower() != "https" or not parts.hostname or "@" in parts.netloc:
        raise refusal
    return url, f"https://{parts.netloc.lower()}"


def accent(value) -> tuple[str | None, str | None]:
    """The accent colour, lower-case, and the text colour readable on it."""
    color = str(value or "").strip()
    if not color:
        return None, None
    if not _COLOR.fullmatch(color):
        raise ValueError(f"PROVIDER_ADMIN_ACCENT_COLOR: {color!r} is not a colour written #rrggbb, "
                         "e.g. #0b5fff.")
    return color.lower(), readable_text_on(color.lower())


def from_config(config) -> Brand:
    """The brand the settings describe; ValueError names the setting that is wrong."""
    logo_url, logo_origin = logo(config.get("LOGO_URL"))
    color, text = accent(config.get("ACCENT_COLOR"))
    return Brand(site_name(config.get("SITE_NAME")), logo_url, logo_origin, color, text)


def brand_of(app: Flask) -> Brand:
    return app.extensions["brand"]


def init_app(app: Flask) -> None:
    brand = app.extensions["brand"] = from_config(app.config)
    app.add_template_global(brand, "brand")
