"""The app's in-process caches: one kind of cache, made and forgotten by the app.

Each app (so each test) has its own, made in the app factory; a commit in this process
ends what a cache keeps "until a commit". Nothing else clears them.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from threading import Lock
from typing import Any, NamedTuple

from flask import Flask, current_app
from sqlalchemy import event

from .extensions import db


class _Entry(NamedTuple):
    value: Any
    made_at: float  # time.monotonic()
    commits: int  # the cache's count of commits when the value was made


class Cache:
    """A bounded, thread-safe map, least recently used out first. An entry is served for
    `seconds` at most (None: while it stays), and, when `until_commit`, only until the next
    commit in this process."""

    def __init__(self, size: int, seconds: float | None = None, until_commit: bool = False):
        self.size, self.seconds, self.until_commit = size, seconds, until_commit
        self._items: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._lock = Lock()
        self._commits = 0

    def get(self, key: Hashable) -> Any:
        """The value kept for `key`, or None."""
        return self.get_many([key])[0]

    def get_many(self, keys: list[Hashable]) -> list[Any]:
        """The value kept for each key, or None: one look-up of a list's rows."""
        found = []
        with self._lock:
            now = time.monotonic()
            for key in keys:
                entry = self._items.get(key)
                if entry is not None and (entry.commits != self._commits or (
                        self.seconds is not None and now - entry.made_at >= self.seconds)):
                    del self._items[key]
                    entry = None
                if entry is not None:
                    self._items.move_to_end(key)
                found.append(None if entry is None else entry.value)
        return found

    def keep(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """make()'s value, kept for `key` unless a commit it may have missed happened while
        it was made."""
        commits, made_at = self._commits, time.monotonic()
        value = make()
        with self._lock:
            if commits == self._commits:
                self._items[key] = _Entry(value, made_at, commits)
                self._items.move_to_end(key)
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
        return value

    def fetch(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """The value kept for `key`, else make()'s, kept."""
        value = self.get(key)
        return self.keep(key, make) if value is None else value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def committed(self) -> None:
        if self.until_commit:
            with self._lock:
                self._commits += 1
                self._items.clear()


# What each cache keeps, and for how long: see the modules that use them.
ROWS_KEPT = 4096
LISTS_KEPT, LIST_SECONDS = 64, 1.0
FINGERPRINTS_KEPT, FINGERPRINT_SECONDS = 256, 1.0
RECENT_USERS_KEPT, RECENT_USER_SECONDS = 1024, 5.0
API_PROVIDERS_KEPT = 4096
ORGANIZATION_SECONDS = 1.0
TICKS_SECONDS = 5.0  # at most; never longer than CHECK_INTERVAL


@dataclass
class Caches:
    # Rendered rows of the providers list (providers/rows.py): keyed by what they show.
    rows: Cache
    # Whole list fragments, served again while their fingerprint holds (providers/rows.py).
    lists: Cache
    # The badge poll's fingerprints, per scope (providers/fingerprint.py).
    fingerprints: Cache
    # The signed-in users' role and active flag, for the poll's quick answer (web.py).
    recent_users: Cache
    # The API's JSON of each provider, keyed by everything it is made of (api/provider_json.py).
    api_providers: Cache
    # The organizations' ids and names, the providers page's filter choices (providers/views.py).
    organizations: Cache
    # The schedulers' last tick, for the stale statuses banner (checks/heartbeat.py).
    ticks: Cache

    def __iter__(self):
        return iter((self.rows, self.lists, self.fingerprints, self.recent_users, self.api_providers,
                     self.organizations, self.ticks))


def init_app(app: Flask) -> None:
    caches = app.extensions["caches"] = Caches(
        rows=Cache(ROWS_KEPT),
        lists=Cache(LISTS_KEPT, LIST_SECONDS, until_commit=True),
        fingerprints=Cache(FINGERPRINTS_KEPT, FINGERPRINT_SECONDS, until_commit=True),
        recent_users=Cache(RECENT_USERS_KEPT, RECENT_USER_SECONDS),
        api_providers=Cache(API_PROVIDERS_KEPT),
        organizations=Cache(1, ORGANIZATION_SECONDS, until_commit=True),
        ticks=Cache(1, min(TICKS_SECONDS, float(app.config["CHECK_INTERVAL"]))),
    )
    with app.app_context():
        engine = db.engine

    @event.listens_for(engine, "commit")
    def _committed(connection) -> None:
        for cache in caches:
            cache.committed()


def caches() -> Caches:
    """The current app's caches."""
    return current_app.extensions["caches"]
