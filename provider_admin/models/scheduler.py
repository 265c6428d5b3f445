"""The scheduler processes' heartbeats: which process is alive, and since when none is."""
from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import UTCDateTime, utcnow


class SchedulerHeartbeat(db.Model):
    """One scheduler process since its start: it moves `last_tick_at` as it ticks. The rows of
    processes that stopped stay a while (the newest says since when no scheduler has run)."""

    __tablename__ = "scheduler_heartbeats"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(String(32), unique=True)  # random, new at each start
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_tick_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    interval: Mapped[float] = mapped_column(Float)  # its CHECK_INTERVAL, in seconds
    version: Mapped[str] = mapped_column(String(64))  # the schema revision its code expects


class WorkerName(NamedTuple):
    """A scheduler process as its claims and check results name it: "host:pid:run_id"."""

    host: str
    pid: int
    run_id: str

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.run_id}"

    @classmethod
    def parse(cls, text: str | None) -> WorkerName | None:
        """The parts of a name written by `str()`; None for anything else (older rows)."""
        host, _, rest = (text or "").partition(":")
        pid, _, run_id = rest.partition(":")
        return cls(host, int(pid), run_id) if host and pid.isdigit() and run_id else None
