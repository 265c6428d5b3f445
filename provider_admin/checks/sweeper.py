"""The sweeper: claims due providers while it has free threads and checks them in a pool.

A tick never waits for a check: a dead cluster holds one thread for at most its timeout
while the other threads go on with the other providers. A finished check refills its
thread at once while the last claim found more due work than it had threads for, so the
throughput is not bound to the tick.
"""
import logging
import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

from flask import Flask

from ..extensions import db
from . import jobs
from .claims import claim_due
from .results import apply_result

log = logging.getLogger(__name__)


class Sweeper:
    def __init__(self, app: Flask, worker: str | None = None):
        self.app = app
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        size = int(app.config["CHECK_POOL_SIZE"])
        self.free = threading.Semaphore(size)
        self.pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="provider-check")
        self.size = size
        self.checked = 0
        self._more = False  # the last claim filled every free thread: more may be due
        self._lock = threading.Lock()

    def tick(self) -> int:
        """Claim as many due providers as there are free threads and start their checks."""
        slots = 0
        while self.free.acquire(blocking=False):
            slots += 1
        if not slots:
            return 0
        config = self.app.config
        with self.app.app_context():
            try:
                claimed = claim_due(self.worker, slots, interval=config["CHECK_INTERVAL"],
                                    lease=config["CHECK_LEASE"],
                                    permissions_every=config["CHECK_PERMISSIONS_EVERY"])
                work = [jobs.job_for(provider, full=full) for provider, full in claimed]
            except Exception:
                log.exception("could not claim providers")
                work = []
            finally:
                db.session.remove()
        self._more = len(work) == slots
        for _ in range(slots - len(work)):
            self.free.release()
        for job in work:
            self.pool.submit(self._check, job)
        return len(work)

    def _check(self, job: jobs.CheckJob) -> None:
        try:
            result, duration = jobs.run(job, self.app.config["CHECK_TIMEOUT"])
            with self.app.app_context():
                try:
                    apply_result(job.provider_id, result, trigger="scheduled", full=job.full,
                                 duration_ms=duration, worker=self.worker)
                    db.session.commit()
                finally:
                    db.session.remove()
            with self._lock:
                self.checked += 1
        except Exception:
            log.exception("check of provider %s failed", job.provider_name)
        finally:
            self.free.release()
        if self._more and not self.closed:
            self.tick()

    closed = False

    def shutdown(self, wait: bool = True) -> None:
        self.closed = True
        self.pool.shutdown(wait=wait, cancel_futures=not wait)
