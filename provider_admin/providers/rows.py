"""The providers list as HTML: each row rendered once and kept while what it shows is the
same, and the whole list fragment kept for a second (both in the app's caches, caches.py).

A row's key is what it shows: its id and display_version, which the database bumps at every
change to anything the row prints (fingerprint.py), its workspace count, its last check (not
every check bumps the version) and the URL prefix. A change is a new key, so nothing needs
invalidating; old keys fall out of the LRU. The one part that changes with the clock, "Last
checked … ago", is left out of the kept HTML and filled in on every render.
"""
from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from flask import render_template, request
from markupsafe import Markup, escape

from ..caches import caches
from ..templating import time_ago
from . import bp
from .fingerprint import current_fingerprint
from .queries import provider_page
from .scope import Scope

# Stands in for the relative time while a row is rendered to be kept.
_AGO = Markup("\x00ago\x00")


class RowKey(NamedTuple):
    script_root: str
    id: int
    display_version: int
    created_at: datetime | None
    workspaces: int
    last_checked_at: datetime | None


@bp.app_template_global()
def provider_row(provider, count: int, check_times: list | None = None) -> Markup:
    """The row of `provider` in the list, from the cache when it shows the same things. For a
    list to be kept, `check_times` collects the row's last check and its "… ago" is left as a
    placeholder (see KeptList)."""
    key = RowKey(request.script_root, provider.id, provider.display_version, provider.created_at,
                 count, provider.last_checked_at)
    parts = caches().rows.fetch(key, lambda: tuple(render_template(
        "providers/_row.html", provider=provider, count=count, ago=_AGO).split(_AGO)))
    if len(parts) == 1:
        return Markup(parts[0])
    if check_times is not None:
        check_times.append(provider.last_checked_at)
        return Markup(str(_AGO).join(parts))
    return Markup(str(escape(time_ago(provider.last_checked_at))).join(parts))


# The whole list ---------------------------------------------------------------------------
#
# A list fragment is served again while (1) the fingerprint of its scope, read afresh on
# every request, is the one it was rendered with, so an added, removed or changed provider
# (whichever process wrote it) or a new workspace count shows at once; (2) no transaction
# committed in this process since; and (3) it is at most LIST_SECONDS old (caches.py): the
# fingerprint does not cover the time of the last check, which changes in other processes and
# shows on the next load after that. The fragment holds nothing per user.

class ListKey(NamedTuple):
    script_root: str
    scope: Scope


class KeptList(NamedTuple):
    """A rendered list: its HTML around each row's "… ago", each row's last check, and the
    number of providers in its scope (all pages)."""

    fingerprint: str
    parts: list[str]
    check_times: list
    total: int

    def now(self) -> Markup:
        """The list with each row's "Last checked … ago" as of now."""
        html = [self.parts[0]]
        for checked, part in zip(self.check_times, self.parts[1:]):
            html += (str(escape(time_ago(checked))), part)
        return Markup("".join(html))


class ProviderList(NamedTuple):
    html: Markup
    total: int  # providers in the scope, on every page


def provider_list(scope: Scope) -> ProviderList:
    """The list fragment of `scope` (providers/_list.html). A page past the end shows the
    last page: kept under its own fingerprint, it is never served again for that scope."""
    lists, key = caches().lists, ListKey(request.script_root, scope)
    kept = lists.get(key)
    if kept is None or kept.fingerprint != current_fingerprint(scope):
        kept = lists.keep(key, lambda: _render(scope))
    return ProviderList(kept.now(), kept.total)


def _render(scope: Scope) -> KeptList:
    listing, check_times = provider_page(scope), []
    parts = render_template("providers/_list.html", listing=listing, check_times=check_times).split(_AGO)
    if len(parts) != len(check_times) + 1:  # the placeholder in a provider's own text
        parts, check_times = [render_template("providers/_list.html", listing=listing, check_times=None)], []
    return KeptList(listing.fingerprint, parts, check_times, listing.total)
