"""Scale benchmark: 5,000 providers kept fresh by two `flask scheduler` processes on
PostgreSQL, with the default check settings.

    .venv/bin/python bench/scale.py [--providers 5000] [--dead-fraction 0.1] [--schedulers 2]
                                    [--warmup 60] [--seconds 180]
                                    [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

Setup: a new database on the PostgreSQL server (dropped at the end) with N providers, each
with its own namespace, in the state a site that has run for a while is in:
  healthy  Ready, last checked within the last interval and due in turn over the next one,
           their permissions checked in turn over the last CHECK_PERMISSIONS_EVERY (so full
           checks come due at the rate they do in production);
  dead     (every 1/fraction-th) pointing at a "black hole" that accepts connections and
           never answers, in Error after a few failures, backed off (CHECK_BACKOFF_MAX) and
           due in turn over it: each of their checks costs one CHECK_TIMEOUT. With --cold
           they start Ready and due like the healthy ones instead: the first sweeps after
           they all went down at once.
The healthy ones point at kmock API servers (tests/kube.py) run by --farms child processes
with --servers servers each, every server holding the markers of its providers. Then
--schedulers real `flask scheduler` processes run with the app's defaults (CHECK_INTERVAL
30, CHECK_TIMEOUT 5, CHECK_POOL_SIZE 64, CHECK_LEASE 120, backoff up to 300 s).

Measured in the same run:
  raw        what the farm can serve: the three requests of a routine check (GET /version,
             /readyz, the marker ConfigMap) for healthy providers, from as many threads as
             all the schedulers' pools, before and after -> raw checks/s; compared with
             what the site needs (healthy / interval + the dead's share).
  staleness  after --warmup s, every --sample s for --seconds s: now - last_checked_at of
             every healthy provider, read from the database -> p50, p99, max over all the
             samples. Target p99 <= CHECK_INTERVAL + CHECK_TIMEOUT.
  history    from the check history: checks/s by each scheduler, checks of healthy
             providers that failed, and double checks (two checks of one provider less than
             an interval apart; target 0).
  CPU        of each scheduler and of the farm processes, and the load average.
A missed target is reported (FAIL), not an error: the exit status is non-zero only when
the benchmark itself could not run.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
from contextlib import ExitStack
from datetime import timedelta

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import (TOKEN, Database, KubeFarm, add_site_options, fernet_key,  # noqa: E402
                          dispose, load_average, make_app, percentile, revision, run_in_workdir,
                          request_loop, site_environment, site_options_refused, start_schedulers,
                          verdict)

MARKER = "provider-admin-marker"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--providers", type=int, default=5000)
    p.add_argument("--dead-fraction", type=float, default=0.1)
    add_site_options(p, interval=30, timeout=5.0, lease=120)
    p.add_argument("--warmup", type=float, default=60, help="seconds before sampling")
    p.add_argument("--seconds", type=float, default=180, help="seconds of sampling")
    p.add_argument("--sample", type=float, default=1.0, help="seconds between samples")
    p.add_argument("--cold", action="store_true",
                   help="the dead providers start Ready and due like the healthy ones: the "
                        "first sweeps after they all went down at once")
    p.add_argument("--farms", type=int, default=2, help="API server processes")
    p.add_argument("--servers", type=int, default=4, help="kmock API servers per process")
    p.add_argument("--raw-checks", type=int, default=1500,
                   help="routine checks' requests per raw-rate measurement")
    args = p.parse_args(argv)
    if refused := site_options_refused(args):
        p.error(refused)
    if args.providers < 1 or args.farms < 1 or args.servers < 1 or not 0 <= args.dead_fraction < 1:
        p.error("need providers, farms, servers >= 1 and 0 <= dead-fraction < 1")
    return args


# Setup ----------------------------------------------------------------------------------

def plan(n: int, dead_fraction: float, servers: int) -> list[tuple[str, str, int | None]]:
    """[(name, namespace, server index or None for dead)], dead spread evenly by id."""
    dead_count = round(n * dead_fraction)
    dead = {int(k * n / dead_count) for k in range(dead_count)} if dead_count else set()
    rows, healthy = [], 0
    for i in range(n):
        if i in dead:
            rows.append((f"p{i:05d}", f"ws-{i:05d}", None))
        else:
            rows.append((f"p{i:05d}", f"ws-{i:05d}", healthy % servers))
            healthy += 1
    return rows


def insert_providers(app, rows, urls: list[str], black_hole: str, args) -> None:
    """The providers as a site that has run for a while has them (see the module's doc)."""
    from provider_admin import crypto
    from provider_admin.extensions import db
    from provider_admin.models import Provider, Status, utcnow
    from tests.kube import provider_uid  # the uid the farm's markers record

    config = app.config
    now, rng = utcnow(), random.Random(14)
    interval, permissions = args.interval, config["CHECK_PERMISSIONS_EVERY"]
    backoff = config["CHECK_BACKOFF_MAX"]

    def at(seconds: float):
        return now + timedelta(seconds=seconds)

    with app.app_context():
        secret = crypto.encrypt(json.dumps({"token": TOKEN}))
        providers = []
        for name, namespace, server in rows:
            common = dict(name=name, uid=provider_uid(name), namespace=namespace,
                          credentials_kind="token", credentials_encrypted=secret,
                          kube_version="v1.33.1", display_version=1)
            if server is None and not args.cold:
                due = rng.uniform(0, backoff)
                providers.append(Provider(
                    **common, cluster_address=black_hole, status=Status.ERROR.value,
                    status_category="unreachable", consecutive_failures=6,
                    status_message="Cannot connect to the cluster.",
                    last_checked_at=at(due - backoff), last_ready_at=at(-3600),
                    last_permissions_check_at=at(-3600), next_check_at=at(due)))
            else:
                due = rng.uniform(0, interval)
                providers.append(Provider(
                    **common, cluster_address=black_hole if server is None else urls[server],
                    status=Status.READY.value,
                    status_category="ready", consecutive_failures=0,
                    last_checked_at=at(due - interval), last_ready_at=at(due - interval),
                    last_permissions_check_at=at(-rng.uniform(0, permissions)),
                    next_check_at=at(due)))
        db.session.add_all(providers)
        db.session.commit()
        db.session.remove()


# Measurements ---------------------------------------------------------------------------

def raw_checks(targets: list[tuple[str, str]], threads: int, total: int) -> dict:
    """The three requests of a routine check, for `targets` (url, namespace) in turn, from
    `threads` keep-alive clients: what the farm serves with nothing else in the way."""
    per_thread = max(1, total // threads)

    def urls_for(index: int, k: int) -> list[str]:
        url, namespace = targets[(index * per_thread + k) % len(targets)]
        return [url + "/version", url + "/readyz",
                f"{url}/api/v1/namespaces/{namespace}/configmaps/{MARKER}"]

    raw = request_loop(threads, total, urls_for, {"Authorization": f"Bearer {TOKEN}"})
    return {**raw, "checks": raw["rounds"]}


class Sampler(threading.Thread):
    """Every `every` s: now - last_checked_at of each healthy provider, from the database."""

    def __init__(self, app, healthy_ids: set[int], every: float):
        super().__init__(daemon=True, name="staleness-sampler")
        self.app, self.healthy, self.every = app, healthy_ids, every
        self.values: list[float] = []
        self.sample_max: list[float] = []
        self.sample_p99: list[float] = []
        self.errors = 0
        self.stop = threading.Event()

    def run(self) -> None:
        from sqlalchemy import select

        from provider_admin.extensions import db
        from provider_admin.models import Provider, utcnow

        while not self.stop.is_set():
            started = time.monotonic()
            try:
                with self.app.app_context():
                    rows = db.session.execute(select(Provider.id, Provider.last_checked_at)).all()
                    db.session.remove()
                now = utcnow()
                ages = [(now - row.last_checked_at).total_seconds() for row in rows
                        if row.id in self.healthy]
                self.values += ages
                self.sample_max.append(max(ages))
                self.sample_p99.append(percentile(ages, 99))
            except Exception:
                self.errors += 1
            self.stop.wait(max(0.0, self.every - (time.monotonic() - started)))


def history(app) -> list:
    from sqlalchemy import select

    from provider_admin.extensions import db
    from provider_admin.models import ProviderCheck

    with app.app_context():
        rows = db.session.execute(
            select(ProviderCheck.provider_id, ProviderCheck.checked_at, ProviderCheck.ok,
                   ProviderCheck.category, ProviderCheck.worker, ProviderCheck.trigger)
            .order_by(ProviderCheck.provider_id, ProviderCheck.checked_at)).all()
        db.session.remove()
    return rows


def double_checks(rows, interval: float, tolerance: float = 1.0) -> list[tuple]:
    """Pairs of consecutive scheduled checks of one provider less than an interval apart: a
    claim moves next_check_at an interval ahead and a result from when it is written, so two
    checks of one provider are always at least an interval apart."""
    doubles, last = [], {}
    for row in rows:
        if row.trigger != "scheduled":
            continue
        previous = last.get(row.provider_id)
        if previous is not None:
            gap = (row.checked_at - previous.checked_at).total_seconds()
            if gap < interval - tolerance:
                doubles.append((row.provider_id, gap, previous.worker, row.worker))
        last[row.provider_id] = row
    return doubles


# Main -----------------------------------------------------------------------------------

def main(argv=None) -> int:
    return run_in_workdir("bench-scale", run, parse_args(argv))


def run(args, folder: str) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    servers = args.farms * args.servers
    rows = plan(args.providers, args.dead_fraction, servers)
    healthy = [row for row in rows if row[2] is not None]
    dead = len(rows) - len(healthy)
    print(f"providers {len(rows)} (healthy {len(healthy)}, dead {dead}); {args.schedulers} "
          f"schedulers, interval {args.interval:g} s, timeout {args.timeout:g} s, pool "
          f"{args.pool}, lease {args.lease:g} s; {args.farms} x {args.servers} API servers; "
          f"{os.cpu_count()} CPUs, load {load_average()}; app at {revision()}")
    started = time.monotonic()
    with ExitStack() as stack:
        database = stack.enter_context(Database(folder, args.database_url))
        farms = []
        for f in range(args.farms):
            markers = [(server - f * args.servers, name, ns) for name, ns, server in healthy
                       if server // args.servers == f]
            farms.append(stack.enter_context(KubeFarm(args.servers, markers)))
        urls = [url for farm in farms for url in farm.urls]
        secret_key, key = "bench-scale-secret", fernet_key()
        settings = dict(CHECK_INTERVAL=args.interval, CHECK_TIMEOUT=args.timeout,
                        CHECK_POOL_SIZE=args.pool, CHECK_LEASE=args.lease)
        app = make_app(database.url, SECRET_KEY=secret_key, ENCRYPTION_KEY=key, **settings)
        stack.callback(dispose, app)
        insert_providers(app, rows, urls, farms[0].black_hole, args)
        print(f"setup {time.monotonic() - started:.1f} s ({database.kind})")

        targets = [(urls[server], ns) for _, ns, server in healthy]
        random.Random(1).shuffle(targets)
        raws = [measure_raw(farms, targets, args, "before")]

        env = site_environment(database.url, secret_key, key, **settings)
        schedulers = start_schedulers(stack, env, args.schedulers, folder)
        t_start = time.monotonic()
        print(f"{args.schedulers} schedulers started (pids "
              f"{', '.join(str(s.pid) for s in schedulers)}); warm-up {args.warmup:g} s")
        time.sleep(args.warmup)

        from provider_admin.models import utcnow
        from sqlalchemy import select

        from provider_admin.extensions import db
        from provider_admin.models import Provider

        with app.app_context():
            names = {name for name, _, server in healthy}
            healthy_ids = {row.id for row in db.session.execute(select(Provider.id, Provider.name))
                           if row.name in names}
            db.session.remove()
        sampler = Sampler(app, healthy_ids, args.sample)
        cpu0 = [s.cpu() for s in schedulers] + [f.cpu() for f in farms]
        window_start, t0, load0 = utcnow(), time.monotonic(), load_average()
        sampler.start()
        sampler.stop.wait(args.seconds)
        sampler.stop.set()
        sampler.join(30)
        elapsed = time.monotonic() - t0
        window_end = utcnow()
        cpu1 = [s.cpu() for s in schedulers] + [f.cpu() for f in farms]
        alive = [s.proc.poll() is None for s in schedulers]
        for scheduler in schedulers:
            scheduler.stop()
        print(f"sampled {len(sampler.sample_max)} times over {elapsed:.0f} s "
              f"({time.monotonic() - t_start:.0f} s after the schedulers started); load "
              f"{load0} -> {load_average()}")
        raws.append(measure_raw(farms, targets, args, "after"))
        rows_h = history(app)
        return report(args, sampler, rows_h, healthy_ids, raws, len(healthy), dead, schedulers,
                      alive, [b - a for a, b in zip(cpu0, cpu1)], elapsed, window_start,
                      window_end)


def measure_raw(farms: list[KubeFarm], targets, args, label: str) -> float:
    cpu0, t0 = sum(f.cpu() for f in farms), time.monotonic()
    raw = raw_checks(targets, args.schedulers * args.pool, args.raw_checks)
    farm_cpu = (sum(f.cpu() for f in farms) - cpu0) / (time.monotonic() - t0)
    print(f"raw routine checks ({label}): {raw['checks']} (x 3 requests) in "
          f"{raw['seconds']:.2f} s = {raw['rate']:.0f} checks/s; CPU: client "
          f"{raw['client_cpu']:.2f}, API servers {farm_cpu:.2f} cores")
    return raw["rate"]


def report(args, sampler: Sampler, rows, healthy_ids, raws, healthy: int, dead: int,
           schedulers, alive, cpu, elapsed, window_start, window_end) -> int:
    target = args.interval + args.timeout
    values = sampler.values
    in_window = [r for r in rows if window_start <= r.checked_at <= window_end]
    by_worker: dict[str, int] = {}
    for r in in_window:
        by_worker[r.worker or "?"] = by_worker.get(r.worker or "?", 0) + 1
    failed_healthy: dict[str, int] = {}
    for r in in_window:
        if r.provider_id in healthy_ids and not r.ok:
            failed_healthy[r.category] = failed_healthy.get(r.category, 0) + 1
    doubles = double_checks(rows, args.interval)
    need = healthy / args.interval + dead / 300  # the dead are checked every CHECK_BACKOFF_MAX
    raw = sum(raws) / len(raws)

    print()
    print("Results")
    if not values:
        print("  ERROR: no staleness sample could be read")
        return 1
    print(f"  staleness of the {healthy} healthy providers over {len(sampler.sample_max)} "
          f"samples: p50 {percentile(values, 50):.1f} s, p99 {percentile(values, 99):.1f} s, "
          f"max {max(values):.1f} s (per-sample p99 at most {max(sampler.sample_p99):.1f} s)"
          + (f"; {sampler.errors} samples failed" if sampler.errors else ""))
    per = max(1, round(args.interval / args.sample))  # samples per interval
    print("  per interval, the largest p99 of one sample (s): " + ", ".join(
        f"{max(sampler.sample_p99[i:i + per]):.1f}" for i in range(0, len(sampler.sample_p99), per)))
    verdict(f"p99 staleness / (interval + timeout = {target:g} s)",
            percentile(values, 99) / target, 1.0, at_most=True)
    print(f"  checks in the window ({elapsed:.0f} s): {len(in_window)} = "
          f"{len(in_window) / elapsed:.1f}/s; needed about {need:.1f}/s "
          f"({healthy} / {args.interval:g} s + {dead} / 300 s)")
    for i, (worker, count) in enumerate(sorted(by_worker.items())):
        print(f"    {worker}: {count} = {count / elapsed:.1f} checks/s")
    for i, scheduler in enumerate(schedulers):
        print(f"    scheduler {i} (pid {scheduler.pid}): CPU {cpu[i] / elapsed:.2f} cores"
              + ("" if alive[i] else "  ! it had exited"))
    farm_cpu = sum(cpu[len(schedulers):]) / elapsed
    print(f"    API server processes: CPU {farm_cpu:.2f} cores")
    print(f"  farm: raw {raw:.0f} routine checks/s (mean of before and after) against "
          f"{need:.1f} needed: {raw / need:.1f}x headroom")
    if failed_healthy:
        print(f"  ! checks of healthy providers that failed in the window: {failed_healthy}")
    else:
        print("  checks of healthy providers that failed in the window: 0")
    print(f"  double checks (two scheduled checks of one provider < interval - 1 s apart, "
          f"whole run): {len(doubles)}"
          + (f"; e.g. {doubles[:3]}" if doubles else ""))
    verdict("double checks", len(doubles), 0, at_most=True)
    for i, scheduler in enumerate(schedulers):
        tail = scheduler.tail(4000)
        if "Traceback" in tail or "ERROR" in tail:
            print(f"  ! scheduler {i} logged errors:\n{tail[-1500:]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
