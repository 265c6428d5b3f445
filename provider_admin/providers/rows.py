"""The list's rows, rendered once and kept in a bounded in-process cache; and the whole list
fragment, kept for a second.

A row's HTML depends only on what it shows, so the cache key is exactly that: every field the
row prints, its organizations' names, its workspace count and the URL prefix. A change to any
of them is a new key, so nothing needs invalidating; old keys fall out of the LRU. The one
part that changes with the clock, "Last checked … ago", is left out of the cached HTML and
filled in on every render.
"""
import time
from collections import OrderedDict
from operator import attrgetter
from threading import Lock

from flask import current_app, g, render_template, request
from markupsafe import Markup, escape

from ..models import Provider
from ..templating import time_ago
from . import bp
from .queries import Scope, commits_seen, current_fingerprint, provider_page

CACHE_SIZE = 4096
_SHOWN = attrgetter("id", "display_version", "name", "namespace", "cluster_address", "status",
                    "status_message", "cordoned", "cordon_reason", "kube_version", "last_checked_at")
# Stands in for the relative time while a row is rendered for the cache.
_AGO = Markup("\x00ago\x00")


class FragmentCache:
    """A thread-safe LRU of rendered fragments."""

    def __init__(self, size: int):
        self.size, self._items, self._lock = size, OrderedDict(), Lock()

    def get(self, key):
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


cache = FragmentCache(CACHE_SIZE)


@bp.app_template_global()
def provider_row(provider: Provider, count: int) -> Markup:
    """The row of `provider` in the list, from the cache when it shows the same things."""
    key = (request.script_root, count, *_SHOWN(provider), tuple(provider.status_warnings or ()),
           tuple(org.name for org in provider.organizations))
    parts = cache.get(key)
    if parts is None:
        html = render_template("providers/_row.html", provider=provider, count=count, ago=_AGO)
        parts = tuple(html.split(_AGO))
        cache.put(key, parts)
    if len(parts) == 1:
        return Markup(parts[0])
    check_times = g.get("list_check_times")
    if check_times is not None:  # a list being rendered to be kept: the time is filled in later
        check_times.append(provider.last_checked_at)
        return Markup(str(_AGO).join(parts))
    return Markup(str(escape(time_ago(provider.last_checked_at))).join(parts))


# The whole list ---------------------------------------------------------------------------
#
# A list fragment is served again while (1) the fingerprint of its scope, read afresh on
# every request, is the one it was rendered with, so an added, removed or changed provider
# (whichever process wrote it) or a new workspace count shows at once; (2) no transaction
# committed in this process since; and (3) it is at most LIST_SECONDS old: what the
# fingerprint does not cover (the time of the last check, a renamed organization) changes in
# other processes, and shows on the next load after that. The fragment holds nothing per user.

LIST_SECONDS = 1.0
LISTS_KEPT = 64


def provider_list(scope: Scope) -> Markup:
    """The list fragment of `scope` (providers/_list.html)."""
    lists = current_app.extensions.setdefault("provider_lists", FragmentCache(LISTS_KEPT))
    key = (request.script_root, scope.kind, scope.q, scope.page, scope.provider_id)
    kept = lists.get(key)
    commits, now = commits_seen(), time.monotonic()
    if kept is not None and kept[0] == commits and kept[1] > now and kept[2] == current_fingerprint(scope):
        return _with_times(*kept[3:])
    listing = provider_page(scope)
    g.list_check_times = check_times = []
    try:
        parts = render_template("providers/_list.html", listing=listing).split(_AGO)
    finally:
        del g.list_check_times
    if len(parts) != len(check_times) + 1:  # the placeholder in a provider's own text
        return Markup(render_template("providers/_list.html", listing=listing))
    if listing.scope == scope:  # not a page past the end, shown as the last one
        lists.put(key, (commits, now + LIST_SECONDS, listing.fingerprint, parts, check_times))
    return _with_times(parts, check_times)


def _with_times(parts: list, check_times: list) -> Markup:
    """The list with each row's "Last checked … ago" as of now."""
    html = [parts[0]]
    for checked, part in zip(check_times, parts[1:]):
        html += (str(escape(time_ago(checked))), part)
    return Markup("".join(html))
