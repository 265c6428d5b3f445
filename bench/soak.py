"""Soak benchmark: the production topology under people's use for a few minutes, one
scheduler killed halfway, and then what was lost, doubled or left wrong.

    .venv/bin/python bench/soak.py [--providers 300] [--seconds 300] [--interval 5]
                                   [--lease 20] [--timeout 2]
                                   [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

Setup: a new database on the PostgreSQL server (dropped at the end); gunicorn (--workers
sync workers) and --schedulers `flask scheduler` processes on it, with short check settings
(interval, lease, timeout, backoff) so that a few minutes hold many intervals; N providers
on kmock API servers (bench/kube_farm.py, a child process): most healthy, --dead-fraction
pointing at a black hole, and --flapping-fraction whose health the farm changes during the
run (their marker is replaced by another provider's, then put back: marker_conflict, then
Ready). A site admin signs in through the login form for each simulated person, and
each API client has its own token.

During --seconds:
  pollers   open a page of the providers list, or a provider's page, and poll as the
            open page does (the GET with its fingerprint every POLL_SECONDS; on a change
            the POST of the versions shown, then the new fingerprint), reopening it now
            and then;
  cordoners cordon and uncordon providers, through the pages (the dialog, its form and
            CSRF token, HTMX headers) or the JSON API;
  editors   change providers' access URL, through the edit form (HTMX, the version it
            was read at) or the API (PATCH with If-Match); a conflict (409/412) is read
            again and retried;
  the farm  breaks and heals the flapping providers;
  at --kill-at of the run, one scheduler is SIGKILLed (not restarted).
Each provider that is acted on has one cordoner and one editor, one of them through the
pages and the other through the API, so the two race on it; "last one wins" is then
well defined per kind of change.

Then the load stops, the farm's truth is fixed, and the statuses are left to settle (at
most --settle s). Reported: requests, 5xx and latency p50/p95/p99 per endpoint; double
checks (two scheduled checks of one provider less than an interval apart); per provider
the largest gap between two checks beyond what its last result asked for (the interval,
or the backoff of a failing cluster), against the lease (plus the timeout of the check
that follows and two scheduler ticks); status mismatches against the farm's truth; lost
edits and cordons (the last acknowledged one of each provider is what it has at the end).
Targets: 0 x 5xx, 0 double checks, 0 mismatches, gaps within interval + lease, 0 lost.
A missed target is a FAIL line; the exit status is non-zero only if the run could not be
made.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import threading
import time
from contextlib import ExitStack
from datetime import timedelta

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import (TOKEN, Database, KubeFarm, add_site_options, fernet_key,  # noqa: E402
                          dispose, load_average, make_app, percentile, revision, run_in_workdir,
                          site_environment, site_options_refused, start_schedulers, verdict)
from bench.soak_people import (PASSWORD, Client, Recorder, api_cordoner, api_editor,  # noqa: E402
                               flapper, page_cordoner, page_editor, poller)
from bench.web import Gunicorn  # noqa: E402

TICK = 1.0  # the scheduler's tick (provider_admin/checks/scheduler.py)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--providers", type=int, default=300)
    p.add_argument("--dead-fraction", type=float, default=0.1)
    p.add_argument("--flapping-fraction", type=float, default=0.1)
    p.add_argument("--seconds", type=float, default=300, help="length of the load")
    add_site_options(p, interval=5, timeout=2, lease=20)
    p.add_argument("--backoff-max", type=float, default=20, help="CHECK_BACKOFF_MAX")
    p.add_argument("--poll", type=float, default=5, help="POLL_SECONDS")
    p.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    p.add_argument("--kill-at", type=float, default=0.5,
                   help="fraction of the run when one scheduler is SIGKILLed (>= 1: never)")
    p.add_argument("--pollers", type=int, default=6, help="open pages polling")
    p.add_argument("--people", type=int, default=2,
                   help="of each kind: page cordoner, page editor, API cordoner, API editor")
    # Few providers and short pauses: people often act on one provider at the same moment.
    p.add_argument("--acted", type=int, default=10, help="providers cordoned and edited")
    p.add_argument("--pause", type=float, default=0.5, help="mean seconds between actions")
    p.add_argument("--settle", type=float, default=90, help="at most this long at the end")
    p.add_argument("--servers", type=int, default=4, help="kmock API servers")
    args = p.parse_args(argv)
    if refused := site_options_refused(args):
        p.error(refused)
    if (args.providers < 10 or args.workers < 1 or args.people < 1
            or not 0 <= args.dead_fraction + args.flapping_fraction < 1
            or not 0 < args.acted <= args.providers):
        p.error("need providers >= 10, workers, people >= 1, "
                "0 <= dead + flapping fractions < 1 and 0 < acted <= providers")
    return args


# Setup ----------------------------------------------------------------------------------

class Planned:
    def __init__(self, index: int, kind: str, server: int | None):
        self.name, self.namespace = f"soak-{index:04d}", f"ws-{index:04d}"
        self.kind, self.server = kind, server  # kind: healthy, dead or flapping
        self.broken = False  # flapping: its marker is another provider's right now
        self.id = 0

    @property
    def truth(self) -> str:
        return "error" if self.kind == "dead" or self.broken else "ready"


def plan(args) -> list[Planned]:
    rng = random.Random(14)
    n = args.providers
    kinds = (["dead"] * round(n * args.dead_fraction)
             + ["flapping"] * round(n * args.flapping_fraction))
    kinds += ["healthy"] * (n - len(kinds))
    rng.shuffle(kinds)
    planned, served = [], 0
    for i, kind in enumerate(kinds):
        server = None if kind == "dead" else served % args.servers
        served += kind != "dead"
        planned.append(Planned(i, kind, server))
    return planned


def populate(app, planned: list[Planned], farm: KubeFarm, args) -> list[str]:
    """The providers, Ready and due in turn over the next interval; a site admin; a
    read-write API token per API person. Returns the tokens."""
    from provider_admin import crypto
    from provider_admin.extensions import db
    from provider_admin.models import Provider, Role, Status, User, utcnow
    from provider_admin.tokens import service
    from tests.kube import provider_uid

    now, rng = utcnow(), random.Random(5)
    with app.app_context():
        admin = User(email="admin@example.com", username="admin", role=Role.ADMIN.value)
        admin.set_password(PASSWORD)
        db.session.add(admin)
        secret = crypto.encrypt(json.dumps({"token": TOKEN}))
        rows = []
        for p in planned:
            due = now + timedelta(seconds=rng.uniform(0, args.interval))
            rows.append(Provider(
                name=p.name, uid=provider_uid(p.name), namespace=p.namespace,
                credentials_kind="token", credentials_encrypted=secret,
                cluster_address=farm.black_hole if p.server is None else farm.urls[p.server],
                ca_cert=farm.cas[0 if p.server is None else p.server].strip(),  # as a save stores it
                status=Status.READY.value, status_category="ready", kube_version="v1.33.1",
                consecutive_failures=0, last_checked_at=due - timedelta(seconds=args.interval),
                last_ready_at=now, last_permissions_check_at=now, next_check_at=due,
                display_version=1))
        db.session.add_all(rows)
        db.session.commit()
        for p, row in zip(planned, rows):
            p.id = row.id
        tokens = [service.create(admin, f"soak-{i}", 7, read_only=False)[1]
                  for i in range(args.people)]
        db.session.remove()
    return tokens


# Analysis -------------------------------------------------------------------------------

def check_history(app) -> list:
    from sqlalchemy import select

    from provider_admin.extensions import db
    from provider_admin.models import ProviderCheck

    with app.app_context():
        rows = db.session.execute(
            select(ProviderCheck.provider_id, ProviderCheck.checked_at, ProviderCheck.ok,
                   ProviderCheck.category, ProviderCheck.trigger, ProviderCheck.worker,
                   ProviderCheck.superseded)
            .order_by(ProviderCheck.provider_id, ProviderCheck.id)).all()
        db.session.remove()
    return rows


def gaps_and_doubles(rows, args, until) -> tuple[list, list]:
    """Per pair of consecutive checks of a provider: how far past what the first one asked
    for (its wait: the interval, or the backoff after failures) the second came, and for
    its last check, how far past it `until` (the schedulers' stop) is; and the scheduled
    checks that came less than an interval after the previous scheduled one."""
    overdue, doubles = [], []
    last_any, last_scheduled, failures = {}, {}, {}

    def wait_after(previous) -> float:
        f = failures.get(previous.provider_id, 0)
        if f == 0 or previous.category == "not_deployed":  # Pending: no backoff
            return args.interval
        return min(args.interval * 2 ** (f - 1), args.backoff_max)

    for row in rows:
        pid = row.provider_id
        previous = last_any.get(pid)
        if previous is not None:
            gap, wait = (row.checked_at - previous.checked_at).total_seconds(), wait_after(previous)
            overdue.append((gap - wait, gap, wait, pid, previous.checked_at, row.checked_at))
        if row.trigger == "scheduled":
            before = last_scheduled.get(pid)
            # A settings change supersedes the check under way and makes its provider due
            # at once: that second check is meant.
            if before is not None and not before.superseded:
                gap = (row.checked_at - before.checked_at).total_seconds()
                if gap < args.interval - 1.0:
                    doubles.append((pid, round(gap, 2), before.worker, row.worker))
            last_scheduled[pid] = row
        if not row.superseded:
            failures[pid] = 0 if row.ok else failures.get(pid, 0) + 1
        last_any[pid] = row
    for pid, last in last_any.items():  # the gap still open when the schedulers stopped
        gap, wait = (until - last.checked_at).total_seconds(), wait_after(last)
        overdue.append((gap - wait, gap, wait, pid, last.checked_at, until))
    return overdue, doubles


def statuses(app) -> dict[int, tuple]:
    from sqlalchemy import select

    from provider_admin.extensions import db
    from provider_admin.models import Provider

    with app.app_context():
        rows = db.session.execute(select(Provider.id, Provider.status, Provider.access_url,
                                         Provider.cordoned, Provider.cordon_reason)).all()
        db.session.remove()
    return {row.id: row for row in rows}


def mismatches(app, planned: list[Planned]) -> list[tuple]:
    now = statuses(app)
    return [(p.name, p.kind, p.truth, now[p.id].status) for p in planned
            if now[p.id].status != p.truth]


# Main -----------------------------------------------------------------------------------

def main(argv=None) -> int:
    return run_in_workdir("bench-soak", run, parse_args(argv))


def run(args, folder: str) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    planned = plan(args)
    counts = {k: sum(p.kind == k for p in planned) for k in ("healthy", "dead", "flapping")}
    print(f"providers {len(planned)} {counts}; gunicorn -w {args.workers}, {args.schedulers} "
          f"schedulers; interval {args.interval:g} s, lease {args.lease:g} s, timeout "
          f"{args.timeout:g} s, backoff max {args.backoff_max:g} s, poll {args.poll:g} s; "
          f"{args.pollers} pollers, {args.people} people of each kind on {args.acted} "
          f"providers; {args.seconds:g} s; {os.cpu_count()} CPUs, load {load_average()}; "
          f"app at {revision()}")
    with ExitStack() as stack:
        database = stack.enter_context(Database(folder, args.database_url))
        markers = [(p.server, p.name, p.namespace) for p in planned if p.server is not None]
        # HTTPS, as the app accepts no other cluster address when a provider is saved.
        farm = stack.enter_context(KubeFarm(args.servers, markers, tls=True))
        secret_key, key = "bench-soak-secret", fernet_key()
        settings = dict(CHECK_INTERVAL=args.interval, CHECK_TIMEOUT=args.timeout,
                        CHECK_LEASE=args.lease, CHECK_BACKOFF_MAX=args.backoff_max,
                        CHECK_POOL_SIZE=args.pool, CHECK_HISTORY=100_000,
                        POLL_SECONDS=args.poll)
        app = make_app(database.url, SECRET_KEY=secret_key, ENCRYPTION_KEY=key, **settings)
        stack.callback(dispose, app)
        tokens = populate(app, planned, farm, args)
        env = site_environment(database.url, secret_key, key, **settings)
        web = stack.enter_context(Gunicorn("app:create_app()", args.workers, env,
                                           os.path.join(folder, "gunicorn.log")))
        schedulers = start_schedulers(stack, env, args.schedulers, folder)
        base = f"http://127.0.0.1:{web.port}"
        result = load(args, app, planned, farm, base, tokens, schedulers)
        recorder, killed_at, loaded_s = result
        load_end = load_average()
        settle_s, left = settle(app, planned, args.settle)
        from provider_admin.models import utcnow

        stopped = utcnow()
        for scheduler in schedulers:
            scheduler.stop()
        rows = check_history(app)
        final = statuses(app)
        with open(web.log_path) as f:
            web_log = f.read()
        return report(args, recorder, rows, final, left, settle_s, planned, schedulers,
                      killed_at, loaded_s, stopped, web_log, load_end)


def held_claims(app, pid: int) -> tuple:
    """When, and which providers a killed scheduler still held (its worker is host:pid:run)."""
    from sqlalchemy import select

    from provider_admin.extensions import db
    from provider_admin.models import Provider, utcnow

    now = utcnow()
    with app.app_context():
        ids = set(db.session.scalars(select(Provider.id).where(
            Provider.claimed_by.like(f"%:{pid}:%"), Provider.claimed_until > now)))
        db.session.remove()
    return now, ids


def load(args, app, planned, farm, base, tokens, schedulers):
    recorder, stop = Recorder(), threading.Event()
    rng = random.Random(7)
    acted = [p.id for p in rng.sample(planned, args.acted)]
    # Each acted provider: one cordoner and one editor, one on the pages and one on the API.
    halves = [acted[: len(acted) // 2], acted[len(acted) // 2:]]
    threads = []

    def start(target, *a):
        t = threading.Thread(target=target, args=a, daemon=True)
        t.start()
        threads.append(t)

    def shares(ids, k):
        return [ids[i::args.people] for i in range(args.people)][k] or ids

    for i in range(args.pollers):
        client = Client(base, recorder, f"Mozilla/5.0 soak poller {i}")
        if i % 3 == 2:
            pid = rng.choice(acted)
            start(poller, client, f"/manage/providers/{pid}", "provider", stop, args.poll, 60)
        else:
            page = 1 + i % max(1, (len(planned) + 49) // 50)
            start(poller, client, f"/manage/providers/?page={page}", "list", stop, args.poll, 60)
    for k in range(args.people):
        seed = random.Random(100 + k)
        start(page_cordoner, Client(base, recorder, f"Mozilla/5.0 soak page cordoner {k}"),
              shares(halves[0], k), stop, seed, args.pause, recorder)
        start(page_editor, Client(base, recorder, f"Mozilla/5.0 soak page editor {k}"),
              shares(halves[1], k), stop, random.Random(200 + k), args.pause, recorder)
        for target, ids, s in ((api_cordoner, halves[1], 300), (api_editor, halves[0], 400)):
            client = Client(base, recorder, f"soak API client {k}")
            client.http.headers["Authorization"] = f"Bearer {tokens[k]}"
            start(target, client, shares(ids, k), stop, random.Random(s + k), args.pause, recorder)
    flapping = [p for p in planned if p.kind == "flapping"]
    # Each flapping provider changes about every six intervals.
    start(flapper, farm, flapping, stop, random.Random(9),
          6 * args.interval / max(1, len(flapping)), recorder)
    started = time.monotonic()
    killed_at = None
    print(f"load started: {len(threads)} threads")
    while time.monotonic() - started < args.seconds:
        elapsed = time.monotonic() - started
        if killed_at is None and args.kill_at < 1 and elapsed >= args.kill_at * args.seconds:
            # Mid-sweep: once it holds the claim of a dead provider (up to 30 s), whose check
            # lasts the timeout, so that the kill surely loses checks under way.
            dead = {p.id for p in planned if p.kind == "dead"}
            waited = time.monotonic()
            while not held_claims(app, schedulers[0].pid)[1] & dead and \
                    time.monotonic() - waited < 30:
                time.sleep(0.05)
            schedulers[0].kill()
            killed_at = held_claims(app, schedulers[0].pid)
            print(f"{elapsed:.0f} s: scheduler 0 (pid {schedulers[0].pid}) SIGKILLed holding "
                  f"{len(killed_at[1])} claims; load {load_average()}")
        time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(90)
    loaded = time.monotonic() - started
    print(f"load stopped after {loaded:.0f} s; load {load_average()}")
    return recorder, killed_at, loaded


def settle(app, planned, limit: float) -> tuple[float, list]:
    """Until every status is the farm's truth, or `limit` s."""
    started = time.monotonic()
    while True:
        left = mismatches(app, planned)
        if not left or time.monotonic() - started > limit:
            return time.monotonic() - started, left
        time.sleep(1.0)


def server_errors_in(log: str) -> dict[tuple[str, str], list[str]]:
    """The app's logged exceptions ("ERROR in app: Exception on /path [METHOD]" and its
    traceback), by request and exception (its last line)."""
    found: dict[tuple[str, str], list[str]] = {}
    for part in re.split(r"(?m)^(?=\[[^\]]+\] ERROR in )", log)[1:]:
        head, _, trace = part.partition("\n")
        where = re.sub(r"/\d+(?=/| |$)", "/<id>", head.partition(": ")[2])
        lines = [line for line in trace.splitlines() if line and not line.startswith(" ")]
        found.setdefault((where, lines[-1] if lines else "?"), []).append(part)
    return found


def report(args, recorder: Recorder, rows, final, left, settle_s, planned, schedulers,
           killed_at, loaded_s, stopped, web_log: str, load_end: str) -> int:
    print()
    print("Requests per endpoint (latency in ms)")
    print(f"  {'endpoint':42s} {'requests':>8s} {'5xx':>5s} {'4xx':>5s} {'p50':>7s} {'p95':>7s} "
          f"{'p99':>7s} {'max':>7s}")
    total = server_errors = 0
    for endpoint, results in sorted(recorder.requests.items()):
        ms = [1000 * s for _, s in results]
        five = sum(status >= 500 for status, _ in results)
        four = sum(400 <= status < 500 for status, _ in results)
        total += len(results)
        server_errors += five
        print(f"  {endpoint:42s} {len(results):8d} {five:5d} {four:5d} {percentile(ms, 50):7.1f} "
              f"{percentile(ms, 95):7.1f} {percentile(ms, 99):7.1f} {max(ms):7.1f}")
    print(f"  {total} requests in {loaded_s:.0f} s ({total / loaded_s:.1f}/s)")
    for endpoint, what in sorted(recorder.failures.items()):
        print(f"  ! {endpoint}: {len(what)} without the expected answer, e.g. {what[:2]}")
    for what, n in sorted(recorder.counts.items()):
        print(f"  {what}: {n}")
    errors = server_errors_in(web_log)
    for (where, exception), traces in sorted(errors.items()):
        print(f"  ! gunicorn log: {len(traces)} x {where}: {exception}")
    if errors:
        trace = next(iter(errors.values()))[0]
        print("  the first of them, from the gunicorn log (its last 40 lines):")
        print("\n".join("    " + line for line in trace.splitlines()[-40:]))

    overdue, doubles = gaps_and_doubles(rows, args, stopped)
    allowed = args.lease + args.timeout + 2 * TICK
    worst = max(overdue, key=lambda o: o[0], default=(0, 0, 0, None))
    healthy_gaps = [o for o in overdue if o[2] == args.interval]
    strict = sum(1 for o in healthy_gaps if o[1] > args.interval + args.lease)
    print()
    print(f"Checks: {len(rows)} in the history ({sum(r.trigger == 'scheduled' for r in rows)} "
          f"scheduled, {sum(r.superseded for r in rows)} superseded by a settings change), by "
          f"{len({r.worker for r in rows if r.worker})} scheduler processes")
    if killed_at is not None:
        when, held = killed_at
        spans = [o for o in overdue if o[3] in held and o[4] <= when <= o[5]]
        print(f"  scheduler 0 was killed {args.kill_at:.0%} into the load, holding {len(held)} "
              f"claims" + (f"; the checks of those providers before and after it (or the "
                           f"schedulers' stop) were at most "
                           f"{max(o[1] for o in spans):.1f} s apart ({max(o[0] for o in spans):.1f} s "
                           f"beyond the wait asked for)" if spans else ""))
    print(f"  largest gap beyond the wait asked for: {worst[0]:.1f} s (gap {worst[1]:.1f} s, wait "
          f"{worst[2]:g} s, provider {worst[3]}); allowed: lease {args.lease:g} s + timeout "
          f"{args.timeout:g} s + 2 ticks = {allowed:g} s")
    if healthy_gaps:
        longest = max(healthy_gaps, key=lambda o: o[1])
        print(f"  largest gap after a healthy check: {longest[1]:.1f} s against interval + lease = "
              f"{args.interval + args.lease:g} s ({strict} gaps longer)")
    unchecked = {p.id for p in planned} - {r.provider_id for r in rows}
    if unchecked:
        print(f"  ! {len(unchecked)} providers were never checked, e.g. {sorted(unchecked)[:5]}")
    verdict("largest gap beyond the wait / allowed", worst[0] / allowed, 1.0, at_most=True)
    print(f"  double checks: {len(doubles)}" + (f", e.g. {doubles[:3]}" if doubles else ""))
    verdict("double checks", len(doubles), 0, at_most=True)

    print()
    print(f"End state, after the statuses settled for {settle_s:.0f} s (at most {args.settle:g} s)")
    print(f"  status mismatches against the farm's truth: {len(left)}"
          + (f", e.g. {left[:5]}" if left else ""))
    verdict("status mismatches", len(left), 0, at_most=True)
    lost_edits = [(pid, value, final[pid].access_url) for pid, (_, value) in recorder.edits.items()
                  if final[pid].access_url != value]
    lost_cordons = [(pid, state, final[pid].cordoned, final[pid].cordon_reason)
                    for pid, (_, state, reason) in recorder.cordons.items()
                    if final[pid].cordoned != state or (state and final[pid].cordon_reason != reason)]
    print(f"  acknowledged edits: last one of {len(recorder.edits)} providers; lost: {len(lost_edits)}"
          + (f", e.g. {lost_edits[:3]}" if lost_edits else ""))
    print(f"  acknowledged cordons/uncordons: last one of {len(recorder.cordons)} providers; lost: "
          f"{len(lost_cordons)}" + (f", e.g. {lost_cordons[:3]}" if lost_cordons else ""))
    verdict("5xx answers", server_errors, 0, at_most=True)
    verdict("lost edits and cordons", len(lost_edits) + len(lost_cordons), 0, at_most=True)
    for i, scheduler in enumerate(schedulers):
        tail = scheduler.tail(20000)
        if "Traceback" in tail:
            print(f"  ! scheduler {i} logged {tail.count('Traceback')} tracebacks; the last:\n"
                  f"{tail[tail.rindex('Traceback') - 200:][:2000]}")
    print(f"  load average at the end of the load: {load_end}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
