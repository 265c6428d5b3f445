"""Who may show the app in a frame: FRAME_ANCESTORS, checked at start.

Each entry is 'self', 'none' (alone), or an origin `scheme://host[:port]` with an http or
https scheme; a host may begin with `*.` (any subdomain) and a port may be `*`, as the
Content-Security-Policy allows. What the policy also allows but would let any site frame the
app is refused: `*`, a bare scheme (`https:`), and paths (CSP ignores them in
frame-ancestors, which would mislead whoever wrote one).

Framing by an origin other than the app's own changes the cookies: a browser sends a cookie
with the requests of a frame on another site only when it is SameSite=None, and takes
SameSite=None only with Secure (see sessions.cookie_attributes).
"""
from __future__ import annotations

import re

SETTING = "PROVIDER_ADMIN_FRAME_ANCESTORS"
KEYWORDS = ("'self'", "'none'")
_ORIGIN = re.compile(
    r"(?P<scheme>https?)://(?P<host>(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*"
    r"|\[[0-9a-f:.]+\])(:(?P<port>[0-9]{1,5}|\*))?", re.IGNORECASE)


def parse(setting) -> tuple[str, ...]:
    """The entries of the setting (a list, or text separated by spaces or commas), checked and
    normalized; ValueError names the setting and what is wrong. Empty means 'none'."""
    items = setting if isinstance(setting, (list, tuple)) else str(setting or "").replace(",", " ").split()
    entries = tuple(_entry(str(item).strip()) for item in items if str(item).strip()) or ("'none'",)
    if "'none'" in entries and len(entries) > 1:
        raise ValueError(f"{SETTING}: 'none' forbids all framing and stands alone; "
                         "remove it or the other entries.")
    return tuple(dict.fromkeys(entries))


def _entry(item: str) -> str:
    if item.lower() in KEYWORDS:
        return item.lower()
    if item.lower() in ("self", "none"):
        raise ValueError(f"{SETTING}: write '{item.lower()}' with its single quotes, as CSP does.")
    if item == "*" or re.fullmatch(r"[a-z][a-z0-9+.-]*:", item, re.IGNORECASE):
        raise ValueError(f"{SETTING}: {item!r} would let any site frame the app; "
                         "list each portal's origin, e.g. https://portal.example.com.")
    candidate = item[:-1] if item.endswith("/") and item.count("/") == 3 else item
    match = _ORIGIN.fullmatch(candidate)
    if match is None:
        if re.match(r"https?://[^/]+/", item, re.IGNORECASE):
            raise ValueError(f"{SETTING}: {item!r} has a path; an origin is scheme://host[:port] only.")
        raise ValueError(f"{SETTING}: {item!r} is not an origin such as https://portal.example.com "
                         "(http or https, a host, an optional port), nor 'self' or 'none'.")
    port = match.group("port")
    if port and port != "*" and not 0 < int(port) < 65536:
        raise ValueError(f"{SETTING}: {item!r} has a port outside 1-65535.")
    return candidate.lower()


def by_other_origins(entries: tuple[str, ...]) -> bool:
    """Whether a page of another origin (a portal) may frame the app."""
    return any(entry not in KEYWORDS for entry in entries)
