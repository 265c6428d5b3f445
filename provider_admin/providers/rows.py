"""The list's rows, rendered once and kept in a bounded in-process cache.

A row's HTML depends only on what it shows, so the cache key is exactly that: every field the
row prints, its organizations' names, its workspace count and the URL prefix. A change to any
of them is a new key, so nothing needs invalidating; old keys fall out of the LRU. The one
part that changes with the clock, "Last checked … ago", is left out of the cached HTML and
filled in on every render.
"""
from collections import OrderedDict
from operator import attrgetter
from threading import Lock

from flask import render_template, request
from markupsafe import Markup, escape

from ..models import Provider
from ..templating import time_ago
from . import bp

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
    return Markup(str(escape(time_ago(provider.last_checked_at))).join(parts))
