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

from flask import Flask
from sqlalchemy import func, select

from ..database import describe, is_unreachable
from ..extensions import db
from ..kube.client import size_client_cache
from ..models import Provider
from . import jobs
from .claims import claim_due
from .heartbeat import Heartbeat
from .results import Outcome, new_key, save_results

log = logging.getLogger(__name__)
BATCH_MAX = 100  # results per transaction; a bigger backlog is written in several
WRITE_RETRY_SECONDS = 1.0  # while the database is away, between two tries of a batch
LEASE_MARGIN = 0.1  # of the lease: a result is not sent again this close to its lease's end
_STOP = object()


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
            self.pool.submit(self._check, job, writable_until)
        return len(work)

    def _size_client_cache(self) -> None:
        """Keep a Kubernetes client for every provider, so each check reuses its connection."""
        now = time.monotonic()
        if now < self._cache_sized_until:
            return
        self._cache_sized_until = now + float(self.app.config["CHECK_INTERVAL"])
        size_client_cache(db.session.scalar(select(func.count()).select_from(Provider)) + self.size)

    def _check(self, job: jobs.CheckJob, writable_until: float = float("inf")) -> None:
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
        if outcome is not None:
            self._results.put(outcome)

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

    def shutdown(self, wait: bool = True) -> None:
        """Stop claiming; with `wait`, let the running checks finish and write their results."""
        self.closed = True
        self.pool.shutdown(wait=wait, cancel_futures=not wait)
        self._results.put(_STOP)
        if wait:
            self._writer.join()
