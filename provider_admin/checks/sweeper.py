"""The sweeper: claims due providers while it has free threads and checks them in a pool.

A tick never waits for a check: a dead cluster holds one thread for at most its timeout
while the other threads go on with the other providers.

The check threads only talk to the clusters. Their results go on a queue that one thread,
the results writer, applies in batches (one transaction per batch), so the database sees
one writer per sweeper however many threads check. Before each batch the writer claims
work for the threads that have become free, so the throughput is not bound to the tick.
Claims and batches take turns: only one thread of a sweeper writes at a time.

A sweeper claims up to twice as many providers as it has threads: the second half waits
in the pool's queue, so a thread that finishes a check starts the next one at once instead
of waiting for the database.

Stopping (`shutdown`) claims nothing more and hands back at once the claims whose checks
have not started; the running checks get a grace period, their results are written, and
the claims of those still running then are handed back too, so that another scheduler
takes them at its next tick instead of after the lease. A stopping sweeper waits at most
WRITE_SECONDS for its last writes: with the database away, what it could not write is
lost with the process, and those providers come back when their leases end.

While the database is away the writer keeps its batch and sends it again every
WRITE_RETRY_SECONDS (no claim is made meanwhile), each result until shortly before its
claim's lease ends: after that another scheduler may check the provider, and a late result
must not overwrite a newer one. A batch sent again skips what a commit whose answer was
lost already wrote (see `results`).
"""
import logging
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

from flask import Flask
from sqlalchemy import func, select

from ..database import describe, is_unreachable
from ..extensions import db
from ..kube.client import size_client_cache
from ..models import Provider
from . import jobs
from .claims import claim_due, hand_back
from .heartbeat import Heartbeat
from .results import Outcome, new_key, save_results

log = logging.getLogger(__name__)
BATCH_MAX = 100  # results per transaction; a bigger backlog is written in several
WRITE_SECONDS = 5.0  # after the grace, the longest a stopping sweeper waits for its last writes
WRITE_RETRY_SECONDS = 1.0  # while the database is away, between two tries of a batch
LEASE_MARGIN = 0.1  # of the lease: a result is not sent again this close to its lease's end
_STOP = object()


class Stopped(NamedTuple):
    """What a sweeper's shutdown did."""

    finished: int  # checks that ended in the grace, their results written
    abandoned: int  # checks still running at the end of the grace
    handed_back: int  # claims released for another scheduler to take at once


class Sweeper:
    def __init__(self, app: Flask, worker: str | None = None):
        self.app = app
        self.heartbeat = Heartbeat(app)
        self.worker = worker or str(self.heartbeat.name)  # in claims and results: "host:pid:run"
        size = int(app.config["CHECK_POOL_SIZE"])
        self.free = threading.Semaphore(2 * size)  # claimed checks: running or next in line
        self.pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="provider-check")
        self.size = size
        self.checked = 0  # results written
        self.closed = False
        self._turn = threading.Lock()  # held by the claim or the batch being written
        # The claimed checks not yet done, by id(job): the job and whether it has started.
        # A check that ends after it was handed back has its result dropped.
        self._claimed: dict[int, tuple[jobs.CheckJob, bool]] = {}
        self._claimed_changed = threading.Condition()
        self._results: queue.SimpleQueue = queue.SimpleQueue()
        self._cache_sized_until = 0.0
        self._writer = threading.Thread(target=self._write_results, daemon=True,
                                        name="provider-check-results")
        self._writer.start()

    def tick(self) -> int:
        """Claim as many due providers as there are free threads and start their checks.

        Returns 0 at once while another thread of this sweeper claims or writes: the
        results writer claims again before each batch.
        """
        if self.closed:
            return 0
        self.heartbeat.beat()
        if not self._turn.acquire(blocking=False):
            return 0
        try:
            return self._claim()
        finally:
            self._turn.release()

    def _claim(self) -> int:
        slots = 0
        while self.free.acquire(blocking=False):
            slots += 1
        if not slots:
            return 0
        config = self.app.config
        lease = float(config["CHECK_LEASE"])
        # Measured before the claim: the lease ends no earlier than this in the database.
        writable_until = time.monotonic() + lease * (1 - LEASE_MARGIN)
        with self.app.app_context():
            try:
                self._size_client_cache()
                claimed = claim_due(self.worker, slots, interval=config["CHECK_INTERVAL"],
                                    lease=lease, permissions_every=config["CHECK_PERMISSIONS_EVERY"])
                work = [jobs.job_for(row, full=full) for row, full in claimed]
            except Exception as error:
                if not is_unreachable(error):
                    log.exception("could not claim providers")
                else:  # its claims, had the commit been made, expire: those providers wait a lease
                    log.warning("could not claim providers: the database is not reachable (%s)",
                                describe(error))
                work = []
            finally:
                db.session.remove()
        for _ in range(slots - len(work)):
            self.free.release()
        for job in work:
            self._submit(job, writable_until)
        return len(work)

    def _submit(self, job: jobs.CheckJob, writable_until: float) -> None:
        with self._claimed_changed:
            self._claimed[id(job)] = (job, False)
        try:
            self.pool.submit(self._check, job, writable_until)
        except RuntimeError:  # shut down meanwhile: the claim is handed back
            pass

    def _size_client_cache(self) -> None:
        """Keep a Kubernetes client for every provider, so each check reuses its connection."""
        now = time.monotonic()
        if now < self._cache_sized_until:
            return
        self._cache_sized_until = now + float(self.app.config["CHECK_INTERVAL"])
        size_client_cache(db.session.scalar(select(func.count()).select_from(Provider)) + self.size)

    def _check(self, job: jobs.CheckJob, writable_until: float = float("inf")) -> None:
        with self._claimed_changed:
            if self.closed:  # not started before the shutdown: handed back
                self.free.release()
                return
            self._claimed[id(job)] = (job, True)
        outcome = None
        try:
            result, duration = jobs.run(job, self.app.config["CHECK_TIMEOUT"])
            outcome = Outcome(job.provider_id, result, trigger="scheduled", full=job.full,
                              duration_ms=duration, worker=self.worker, generation=job.generation,
                              key=new_key(), writable_until=writable_until)
        except Exception:
            log.exception("check of provider %s failed", job.provider_name)
        finally:
            # Free before queueing: the writer's claim before this batch can use the room.
            self.free.release()
        with self._claimed_changed:
            mine = self._claimed.pop(id(job), None) is not None
            if outcome is not None and mine:
                self._results.put(outcome)
            self._claimed_changed.notify_all()

    def _write_results(self) -> None:
        """The results writer's loop: a batch of whatever is queued, then a claim."""
        while True:
            batch = [self._results.get()]
            while len(batch) < BATCH_MAX:
                try:
                    batch.append(self._results.get_nowait())
                except queue.Empty:
                    break
            stop = _STOP in batch
            batch = [outcome for outcome in batch if outcome is not _STOP]
            if batch:
                self.tick()  # first, so the threads these results freed need not wait
                with self._turn:
                    self._write(batch)
            if stop:
                return

    def _write(self, batch: list[Outcome]) -> None:
        """Write the batch; while the database is away, send it again until it answers or
        the results' leases run out."""
        again = False
        while batch:
            with self.app.app_context():
                try:
                    self.checked += len(save_results(batch, again=again))
                    break
                except Exception as error:  # unreachable: save_results drops nothing else
                    log.warning("could not write %d check results, the database is not reachable (%s); "
                                "trying again", len(batch), describe(error))
                finally:
                    db.session.remove()
            again = True
            time.sleep(WRITE_RETRY_SECONDS)
            now = time.monotonic()
            late = [o for o in batch if o.writable_until <= now]
            if late:
                log.warning("dropped %d check results: their leases end, the providers will be checked "
                            "again", len(late))
                batch = [o for o in batch if o.writable_until > now]

    def shutdown(self, wait: bool = True, grace: float | None = None) -> Stopped:
        """Stop claiming and hand back the claims of the checks not started. With `wait`, let
        the running checks finish for at most `grace` seconds (None: as long as they take),
        write their results and hand back the claims left; without, just stop."""
        if self.closed:
            return Stopped(0, 0, 0)
        deadline = None if grace is None else time.monotonic() + grace
        written = self.checked
        # A claim under way submits its jobs first (with a database gone, not for long).
        turn = self._turn.acquire(timeout=-1 if grace is None else grace)
        with self._claimed_changed:
            self.closed = True
            waiting = [self._claimed.pop(key)[0].provider_id
                       for key, (_, started) in list(self._claimed.items()) if not started]
        if turn:
            self._turn.release()
        self.pool.shutdown(wait=False, cancel_futures=True)
        if not wait:
            self._results.put(_STOP)
            return Stopped(0, 0, 0)
        handed_back = self._hand_back(waiting) if waiting else 0
        with self._claimed_changed:
            self._claimed_changed.wait_for(lambda: not self._claimed, timeout=None if deadline is None
                                           else max(0.0, deadline - time.monotonic()))
            abandoned = len(self._claimed)
            self._claimed.clear()
        self._results.put(_STOP)
        self._writer.join(None if grace is None else WRITE_SECONDS)
        # The checks abandoned, and any claim whose result could not be written.
        handed_back += self._hand_back()
        return Stopped(self.checked - written, abandoned, handed_back)

    def _hand_back(self, ids: list[int] | None = None) -> int:
        """Release this sweeper's claims on these providers, or all (never raises)."""
        with self.app.app_context():
            try:
                return hand_back(self.worker, ids)
            except Exception:
                log.exception("could not hand back the claims of %s", self.worker)
                db.session.rollback()
                return 0
            finally:
                db.session.remove()
