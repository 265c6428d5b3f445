"""The scheduler heartbeat: each scheduler process records its ticks in the database, and the
providers pages tell managers when none has ticked for three intervals (the statuses they
show are then stale).

Writing: `Heartbeat.beat()`, called by the sweeper's tick, moves the process's row at most
every BEAT_SECONDS (every tick with a short interval). A process that stops leaves its row;
rows not moved for FORGET_AFTER are deleted, except the newest, which says since when no
scheduler has run.

Reading: `staleness()`, on every providers page and on the badge poll's fast path, costs one
aggregate statement at most every TICKS_SECONDS per process (the app's `ticks` cache,
caches.py), and otherwise a comparison of times.
"""
from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from datetime import datetime, timedelta
from typing import NamedTuple

from flask import Flask, current_app
from sqlalchemy import delete, func, insert, select, update

from ..caches import caches
from ..database import describe, is_unreachable, script_head
from ..extensions import db
from ..models import SchedulerHeartbeat, utcnow
from ..models.scheduler import WorkerName

log = logging.getLogger(__name__)
heartbeats = SchedulerHeartbeat.__table__

BEAT_SECONDS = 10.0  # the longest time between two writes of a process's row
FORGET_AFTER = timedelta(days=1)  # the row of a process that stopped ticking goes after this
STALE_AFTER_INTERVALS = 3
# How a manager starts a scheduler (the README's production command).
START_COMMAND = "flask --app app scheduler"
_STARTED = "scheduler_watch_started_at"


class Heartbeat:
    """This scheduler process's row in scheduler_heartbeats."""

    def __init__(self, app: Flask):
        self.app = app
        self.name = WorkerName(socket.gethostname()[:100], os.getpid(), secrets.token_hex(8))
        self.interval = float(app.config["CHECK_INTERVAL"])
        self.started_at = utcnow()
        self._due = 0.0  # time.monotonic() of the next write
        self._forget_due = 0.0
        self._lock = threading.Lock()  # the sweeper ticks from two threads

    def beat(self) -> None:
        """Record a tick, unless one was recorded less than BEAT_SECONDS (or an interval) ago.
        Never raises: with the database gone the process goes on, and the banner shows."""
        now = time.monotonic()
        if now < self._due or not self._lock.acquire(blocking=False):
            return
        # A little early rather than a tick late: ticks come every second at most.
        self._due = now + 0.9 * min(self.interval, BEAT_SECONDS)
        try:
            with self.app.app_context():
                self._write_or_log(forget=now >= self._forget_due)
        finally:
            self._lock.release()
        if now >= self._forget_due:  # at start, then hourly: a day's rows need no more
            self._forget_due = now + FORGET_AFTER.total_seconds() / 24

    def _write_or_log(self, forget: bool) -> None:
        try:
            self._write(forget)
        except Exception as error:
            db.session.rollback()
            if not is_unreachable(error):
                log.exception("could not record the scheduler's heartbeat")
            else:
                log.warning("could not record the scheduler's heartbeat: the database is not reachable (%s)",
                            describe(error))
        finally:
            db.session.remove()

    def _write(self, forget: bool) -> None:
        at = utcnow()
        moved = db.session.execute(update(heartbeats).where(heartbeats.c.run_id == self.name.run_id)
                                   .values(last_tick_at=at)).rowcount
        if not moved:  # the first tick (or the row was forgotten during a long pause)
            db.session.execute(insert(heartbeats).values(
                run_id=self.name.run_id, host=self.name.host, pid=self.name.pid,
                started_at=self.started_at, last_tick_at=at, interval=self.interval,
                version=script_head()))
        if forget:
            newest = select(heartbeats.c.id).order_by(heartbeats.c.last_tick_at.desc()).limit(1)
            db.session.execute(delete(heartbeats).where(
                heartbeats.c.last_tick_at < at - FORGET_AFTER,
                heartbeats.c.id != newest.scalar_subquery()))
        db.session.commit()


# Reading ------------------------------------------------------------------------------------

class LastTick(NamedTuple):
    at: datetime | None  # the newest tick of any scheduler process; None: none has run yet


class Staleness(NamedTuple):
    stale: bool
    since: datetime | None  # the last tick of any scheduler; None: none has run yet
    command: str = START_COMMAND


_LAST_TICK = select(func.max(heartbeats.c.last_tick_at))


def _read_last_tick() -> LastTick:
    return LastTick(db.session.connection().execute(_LAST_TICK).scalar())


def staleness() -> Staleness:
    """Whether no scheduler has ticked for three intervals, as read at most TICKS_SECONDS
    ago. Before any scheduler has ever run, the web process gives one three intervals from
    its own start (the one-command start runs one within a second)."""
    last = caches().ticks.fetch("last", _read_last_tick).at
    limit = STALE_AFTER_INTERVALS * float(current_app.config["CHECK_INTERVAL"])
    reference = last or current_app.extensions[_STARTED]
    return Staleness(utcnow() - reference > timedelta(seconds=limit), last)


def banner_is_current(shown: str | None) -> bool:
    """Whether the banner a page shows ("1" shown, "0" not; None: the page has none) is the
    one it should show now."""
    return shown is None or shown == ("1" if staleness().stale else "0")


def init_app(app: Flask) -> None:
    app.extensions[_STARTED] = utcnow()
    app.add_template_global(staleness, "scheduler_staleness")
