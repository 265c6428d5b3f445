"""Health-check sweep benchmark: how long one sweep of N providers takes, and how close
the healthy checks get to what the Kubernetes API servers can serve.

    .venv/bin/python bench/health_sweep.py [--providers 500] [--dead-fraction 0.1]
                                           [--pool 16] [--timeout 1.0]

Setup: a fresh SQLite database (temporary folder) with N Ready providers, each with its
own namespace. The healthy ones point at a few kmock Kubernetes API servers
(tests/kube.py, in a child process, each with the markers of its providers deployed);
the dead ones (every 1/fraction-th provider) at a "black hole" that accepts connections
and never answers, so each of their checks costs one CHECK_TIMEOUT. Every provider's
permissions were "just checked", so each check is routine: 3 requests when healthy
(GET /version, GET /readyz, GET the marker ConfigMap).

Measured in the same run (the machine is shared and noisy, so only ratios are judged):
  raw      GET /version against the same servers with `pool` threads (urllib3,
           keep-alive), before and after the sweeps: what the servers can serve.
  healthy  a sweep of the healthy providers only: Sweeper(app).tick() every --tick s
           until the result of each was written once -> healthy checks/s.
  full     a sweep of all providers, dead ones included -> sweep time.
Targets: full sweep <= 1.25 x ceil(dead / pool) x timeout, and healthy checks/s >=
1/3 x raw rate / 3 requests per check. A missed target is reported, not an error: the
exit status is non-zero only when the benchmark itself could not run.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import os
import pstats
import shutil
import sys
import threading
import time
from datetime import timedelta

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import (TOKEN, Database, KubeFarm, ceil_div, fernet_key,  # noqa: E402
                          make_app, percentile, request_loop, revision, verdict, workdir)

REQUESTS_PER_CHECK = 3


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--providers", type=int, default=500)
    p.add_argument("--dead-fraction", type=float, default=0.1)
    p.add_argument("--pool", type=int, default=16, help="CHECK_POOL_SIZE")
    p.add_argument("--timeout", type=float, default=1.0, help="CHECK_TIMEOUT in seconds")
    p.add_argument("--servers", type=int, default=4, help="kmock API servers")
    p.add_argument("--tick", type=float, default=0.01,
                   help="seconds between Sweeper.tick() calls (the app's scheduler uses 1.0)")
    p.add_argument("--raw-requests", type=int, default=3000,
                   help="GET /version requests per raw-rate measurement")
    p.add_argument("--max-seconds", type=float, default=300,
                   help="give up on a sweep after this long")
    p.add_argument("--database-url", metavar="URL",
                   help="a PostgreSQL server (e.g. postgresql://postgres@127.0.0.1:5432/postgres) "
                        "to run on a new database there instead of SQLite (dropped at the end)")
    p.add_argument("--sqlite-wal", action="store_true",
                   help="what-if: put the SQLite file in write-ahead-log mode first")
    p.add_argument("--skip-healthy-sweep", action="store_true",
                   help="only the full sweep (and the raw rate)")
    p.add_argument("--profile", action="store_true",
                   help="cProfile (CPU time) the check threads and the ticks; slows everything "
                        "down: use it for where the time goes, not for the ratios")
    args = p.parse_args(argv)
    if args.providers < 1 or args.pool < 1 or args.servers < 1 or not 0 <= args.dead_fraction < 1:
        p.error("need providers >= 1, pool >= 1, servers >= 1 and 0 <= dead-fraction < 1")
    return args


# Setup ----------------------------------------------------------------------------------

def plan(n: int, dead_fraction: float, servers: int):
    """[(name, namespace, server index or None for dead)], dead spread evenly by id."""
    dead_count = round(n * dead_fraction)
    dead = {int(k * n / dead_count) for k in range(dead_count)} if dead_count else set()
    rows, healthy_index = [], 0
    for i in range(n):
        name, namespace = f"p{i:04d}", f"ws-{i:04d}"
        if i in dead:
            rows.append((name, namespace, None))
        else:
            rows.append((name, namespace, healthy_index % servers))
            healthy_index += 1
    return rows


def insert_providers(app, rows, farm: KubeFarm) -> None:
    from provider_admin import crypto
    from provider_admin.extensions import db
    from provider_admin.models import Provider, Status, utcnow
    from tests.kube import provider_uid  # the uid the farm's markers record

    now = utcnow()
    with app.app_context():
        secret = crypto.encrypt(json.dumps({"token": TOKEN}))
        db.session.add_all([
            Provider(
                name=name, uid=provider_uid(name), namespace=namespace, credentials_kind="token",
                cluster_address=farm.black_hole if server is None else farm.urls[server],
                credentials_encrypted=secret, status=Status.READY.value,
                status_category="ready", kube_version="v1.33.1", consecutive_failures=0,
                last_checked_at=now, last_ready_at=now, last_permissions_check_at=now,
                next_check_at=now + timedelta(days=1), display_version=1,
            )
            for name, namespace, server in rows
        ])
        db.session.commit()


def make_due(app, names: list[str] | None) -> None:
    """Make these providers (all when None) due now and unclaimed; the others not due."""
    from sqlalchemy import update

    from provider_admin.extensions import db
    from provider_admin.models import Provider, utcnow

    now = utcnow()
    with app.app_context():
        db.session.execute(update(Provider).values(
            next_check_at=now + timedelta(days=1), claimed_by=None, claimed_until=None))
        due = update(Provider).values(next_check_at=now - timedelta(seconds=1))
        if names is not None:
            due = due.where(Provider.name.in_(names))
        db.session.execute(due)
        db.session.commit()
        db.session.remove()


# Measurements ---------------------------------------------------------------------------

def raw_rate(urls: list[str], threads: int, total: int) -> dict:
    """GET /version as fast as `threads` keep-alive clients can, spread over the servers."""
    raw = request_loop(threads, total, lambda index, _: [urls[index % len(urls)] + "/version"])
    return {**raw, "requests": raw["rounds"]}


class ErrorCounter(logging.Handler):
    """Counts the sweeper's logged exceptions: a check that raised or a result that could
    not be written ("check of provider X failed", "could not write ...": its provider stays
    claimed until the lease ends) or a claim that raised ("could not claim providers": its
    providers stay due)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.checks = self.claims = 0
        self.first: str | None = None

    def emit(self, record):
        if record.getMessage().startswith("could not claim"):
            self.claims += 1
        else:
            self.checks += 1
        if self.first is None:
            self.first = self.format(record)


class Timers:
    """Wall time spent per check in the HTTP check (jobs.run) and in the rest of
    Sweeper._check (queueing the result), per batch of results written (Sweeper._write:
    apply the batch and commit, in the results writer thread), and per tick (claim and
    decrypt), whichever thread ticks. Also which providers' results were written, and how
    often."""

    def __init__(self, expected: int):
        self.lock = threading.Lock()
        self.local = threading.local()
        self.expected = expected
        self.complete = threading.Event()  # every expected provider's result was written
        self.run_s = self.check_s = self.tick_s = self.tick_max = self.nested_tick_s = 0.0
        self.write_s = self.write_max = 0.0
        self.runs = self.checks = self.ticks = self.claimed = self.batches = self.written = 0
        self.done: dict[int, int] = {}  # provider id -> results written

    def wrap_run(self, fn):
        def run(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                with self.lock:
                    self.run_s += time.perf_counter() - t0
                    self.runs += 1
        return run

    def wrap_check(self, fn):
        def check(job):
            self.local.nested = 0.0
            t0 = time.perf_counter()
            try:
                return fn(job)
            finally:
                spent = time.perf_counter() - t0 - self.local.nested  # minus ticks inside
                with self.lock:
                    self.check_s += spent
                    self.checks += 1
        return check

    def wrap_write(self, fn):
        def write(batch):
            t0 = time.perf_counter()
            try:
                return fn(batch)
            finally:
                spent = time.perf_counter() - t0
                with self.lock:
                    self.write_s += spent
                    self.write_max = max(self.write_max, spent)
                    self.batches += 1
                    self.written += len(batch)
                    for outcome in batch:
                        self.done[outcome.provider_id] = self.done.get(outcome.provider_id, 0) + 1
                    if len(self.done) >= self.expected:
                        self.complete.set()
        return write

    def wrap_tick(self, fn):
        def tick():
            t0 = time.perf_counter()
            claimed = fn()
            spent = time.perf_counter() - t0
            nested = hasattr(self.local, "nested")  # called by a check thread
            if nested:
                self.local.nested += spent
            with self.lock:
                self.nested_tick_s += spent if nested else 0.0
                self.tick_s += spent
                self.ticks += 1
                self.tick_max = max(self.tick_max, spent)
                self.claimed += claimed
            return claimed
        return tick


class Profiler:
    """Per-thread cProfile of Sweeper._check, the batches written and the ticks; merged at
    the end."""

    def __init__(self):
        self.local = threading.local()
        self.profiles: list[cProfile.Profile] = []
        self.lock = threading.Lock()

    def wrap(self, fn):
        def wrapped(*args):
            prof = getattr(self.local, "prof", None)
            if prof is None:
                # CPU time of the thread, not wall time: where the work goes, not the waits.
                prof = self.local.prof = cProfile.Profile(time.thread_time)
                self.local.depth = 0
                with self.lock:
                    self.profiles.append(prof)
            self.local.depth += 1
            if self.local.depth == 1:  # a tick called from inside a check is already profiled
                prof.enable()
            try:
                return fn(*args)
            finally:
                self.local.depth -= 1
                if self.local.depth == 0:
                    prof.disable()
        return wrapped

    def report(self, top: int = 30) -> str:
        out = io.StringIO()
        stats = None
        for prof in self.profiles:
            if stats is None:
                stats = pstats.Stats(prof, stream=out)
            else:
                stats.add(prof)
        if stats is None:
            return "(nothing profiled)"
        stats.sort_stats("cumulative").print_stats(top)
        stats.sort_stats("tottime").print_stats(top)
        return out.getvalue()


def sweep(app, expected: int, tick_s: float, max_s: float, profiler: Profiler | None) -> dict:
    """Tick a fresh Sweeper every `tick_s` until `expected` providers were each checked."""
    from provider_admin.checks import jobs
    from provider_admin.checks.sweeper import Sweeper
    from provider_admin.kube.client import clear_client_cache

    clear_client_cache()
    errors = ErrorCounter()
    logger = logging.getLogger("provider_admin.checks")  # the sweeper and the results
    logger.addHandler(errors)
    sweeper = Sweeper(app, worker="bench")
    timers = Timers(expected)
    original_run = jobs.run
    jobs.run = timers.wrap_run(original_run)  # the sweeper calls jobs.run(...)
    # Instance attributes: the sweeper submits self._check, its results writer calls
    # self._write and then self.tick.
    check, tick, write = sweeper._check, sweeper.tick, sweeper._write
    if profiler is not None:
        check, tick, write = profiler.wrap(check), profiler.wrap(tick), profiler.wrap(write)
    sweeper._check, sweeper.tick = timers.wrap_check(check), timers.wrap_tick(tick)
    sweeper._write = timers.wrap_write(write)
    loop_ticks = 0
    cpu0, started = time.process_time(), time.monotonic()
    try:
        while not timers.complete.is_set() and time.monotonic() - started < max_s:
            sweeper.tick()
            loop_ticks += 1
            timers.complete.wait(tick_s)  # the end of the sweep, not the next tick, stops the clock
        elapsed = time.monotonic() - started
    finally:
        sweeper.shutdown(wait=True)
        jobs.run = original_run
        logger.removeHandler(errors)
    return {"seconds": elapsed, "checked": sweeper.checked, "providers": len(timers.done),
            "repeats": sum(n - 1 for n in timers.done.values()), "check_errors": errors.checks,
            "claim_errors": errors.claims, "first_error": errors.first, "loop_ticks": loop_ticks,
            "complete": len(timers.done) >= expected,
            "cpu": (time.process_time() - cpu0) / elapsed, "timers": timers,
            "pool": sweeper.size}


def history(app, since) -> dict:
    """What the sweep recorded: per category, durations, when the last healthy one ended."""
    from sqlalchemy import select

    from provider_admin.extensions import db
    from provider_admin.models import ProviderCheck

    with app.app_context():
        rows = db.session.execute(
            select(ProviderCheck.provider_id, ProviderCheck.ok, ProviderCheck.category,
                   ProviderCheck.duration_ms, ProviderCheck.checked_at)
            .where(ProviderCheck.id > since)).all()
        db.session.remove()
    categories: dict[str, int] = {}
    for row in rows:
        categories[row.category] = categories.get(row.category, 0) + 1
    ok = [r.duration_ms for r in rows if r.ok]
    failed = [r.duration_ms for r in rows if not r.ok]
    return {"rows": len(rows), "providers": len({r.provider_id for r in rows}),
            "categories": categories, "ok_ms": ok, "failed_ms": failed}


def last_check_id(app) -> int:
    from sqlalchemy import func, select

    from provider_admin.extensions import db
    from provider_admin.models import ProviderCheck

    with app.app_context():
        value = db.session.scalar(select(func.max(ProviderCheck.id))) or 0
        db.session.remove()
    return value


def describe(label: str, result: dict, hist: dict, farm_cpu: float, tick_s: float) -> None:
    ok, failed, t = hist["ok_ms"], hist["failed_ms"], result["timers"]
    print(f"{label}: {result['providers']} providers checked in {result['seconds']:.2f} s "
          f"({result['checked']} checks recorded by the sweeper)")
    print(f"    results {hist['categories']}")
    if result["repeats"]:
        print(f"    ! {result['repeats']} checks repeated a provider already checked in this sweep")
    if result["check_errors"] or result["claim_errors"]:
        print(f"    ! exceptions logged: {result['check_errors']} checks, "
              f"{result['claim_errors']} claims; first: {(result['first_error'] or '')[:400]}")
    if ok:
        print(f"    healthy check duration ms (ProviderCheck.duration_ms): p50 "
              f"{percentile(ok, 50):.1f}  p95 {percentile(ok, 95):.1f}  max {max(ok):.1f}")
    if failed:
        print(f"    failed check duration ms:  p50 {percentile(failed, 50):.1f}  "
              f"p95 {percentile(failed, 95):.1f}  max {max(failed):.1f}")
    if t.checks:
        busy = (t.check_s + t.nested_tick_s) / (result["pool"] * result["seconds"])
        print(f"    per check, thread wall time: HTTP check {1000 * t.run_s / t.runs:.1f} ms, "
              f"rest {1000 * (t.check_s - t.run_s) / t.checks:.2f} ms; "
              f"pool threads busy {100 * busy:.0f}% of the sweep")
    if t.batches:
        print(f"    database write: {t.written} results in {t.batches} batches (mean "
              f"{t.written / t.batches:.1f}), {1000 * t.write_s / t.batches:.1f} ms per batch "
              f"(max {1000 * t.write_max:.1f}), {1000 * t.write_s / t.written:.2f} ms per result; "
              f"writer busy {100 * t.write_s / result['seconds']:.0f}% of the sweep")
    print(f"    ticks: {t.ticks} ({result['loop_ticks']} by the loop, every {1000 * tick_s:.0f} ms "
          f"+ the tick), mean {1000 * t.tick_s / max(1, t.ticks):.1f} ms, max "
          f"{1000 * t.tick_max:.1f} ms; {t.claimed} claimed")
    print(f"    CPU (cores busy): this process {result['cpu']:.2f}, API servers {farm_cpu:.2f}")


# Main -----------------------------------------------------------------------------------

def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    folder = workdir("bench-sweep")
    try:
        rows = plan(args.providers, args.dead_fraction, args.servers)
        healthy = [name for name, _, server in rows if server is not None]
        dead = len(rows) - len(healthy)
        print(f"providers {len(rows)} (healthy {len(healthy)}, dead {dead}), pool {args.pool}, "
              f"timeout {args.timeout} s, tick {args.tick} s, {args.servers} API servers, "
              f"{os.cpu_count()} CPUs; app at {revision()}")
        markers = [(server, name, ns) for name, ns, server in rows if server is not None]
        started = time.monotonic()
        with Database(folder, args.database_url) as database, \
                KubeFarm(args.servers, markers) as farm:
            app = make_app(database.url, ENCRYPTION_KEY=fernet_key(),
                           CHECK_POOL_SIZE=args.pool, CHECK_TIMEOUT=args.timeout,
                           CHECK_INTERVAL=24 * 3600, CHECK_PERMISSIONS_EVERY=7 * 24 * 3600,
                           CHECK_LEASE=3600)
            if args.sqlite_wal:
                database.use_wal(app)
            print(f"database: {database.kind}{' (WAL)' if args.sqlite_wal else ''}")
            try:
                insert_providers(app, rows, farm)
                print(f"setup {time.monotonic() - started:.1f} s")
                return run(app, farm, args, healthy, dead)
            finally:
                from provider_admin.extensions import db

                with app.app_context():
                    db.engine.dispose()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(app, farm: KubeFarm, args, healthy: list[str], dead: int) -> int:
    profiler = Profiler() if args.profile else None
    raws = []

    def measure_raw(label):
        cpu0, t0 = farm.cpu(), time.monotonic()
        raw = raw_rate(farm.urls, args.pool, args.raw_requests)
        farm_cpu = (farm.cpu() - cpu0) / (time.monotonic() - t0)
        raws.append(raw["rate"])
        print(f"raw GET /version ({label}): {raw['requests']} in {raw['seconds']:.2f} s = "
              f"{raw['rate']:.0f} req/s; CPU: client {raw['client_cpu']:.2f}, "
              f"API servers {farm_cpu:.2f}")

    measure_raw("before")

    healthy_rate = None
    if not args.skip_healthy_sweep and healthy:
        make_due(app, healthy)
        since = last_check_id(app)
        cpu0 = farm.cpu()
        result = sweep(app, len(healthy), args.tick, args.max_seconds, profiler)
        hist = history(app, since)
        describe("healthy-only sweep", result, hist, (farm.cpu() - cpu0) / result["seconds"],
                 args.tick)
        if not result["complete"]:
            print("ERROR: the healthy sweep did not complete")
            return 1
        healthy_rate = len(healthy) / result["seconds"]

    make_due(app, None)
    since = last_check_id(app)
    cpu0 = farm.cpu()
    expected = len(healthy) + dead
    result = sweep(app, expected, args.tick, args.max_seconds, profiler)
    hist = history(app, since)
    describe("full sweep", result, hist, (farm.cpu() - cpu0) / result["seconds"], args.tick)
    if not result["complete"]:
        print("ERROR: the full sweep did not complete")
        return 1

    measure_raw("after")

    raw = sum(raws) / len(raws)
    bound = ceil_div(dead, args.pool) * args.timeout
    print()
    print("Results")
    print(f"  full sweep {result['seconds']:.2f} s; bound ceil({dead}/{args.pool}) x "
          f"{args.timeout} s = {bound:.2f} s")
    if bound:
        verdict("sweep / bound", result["seconds"] / bound, 1.25, at_most=True)
    else:
        print("  (no dead providers: no bound to compare with)")
    if healthy_rate is not None:
        ideal = raw / REQUESTS_PER_CHECK
        print(f"  healthy {healthy_rate:.1f} checks/s; raw {raw:.0f} req/s / "
              f"{REQUESTS_PER_CHECK} = {ideal:.1f} checks/s")
        verdict("healthy checks/s / (raw / 3)", healthy_rate / ideal, 1 / 3)
    if profiler is not None:
        print("\nProfile, CPU seconds (check threads and ticks, both sweeps; the timings above "
              "are inflated by the profiler):")
        print(profiler.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
