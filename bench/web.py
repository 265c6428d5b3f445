"""Web benchmark: requests/second of the providers page and of the badge poll, against a
trivial Flask endpoint served the same way in the same run.

    .venv/bin/python bench/web.py [--providers 500] [--seconds 5]

Setup: a fresh SQLite database (temporary folder) with N providers (mixed statuses, a few
organizations, some workspaces) and a site admin, signed in through the real login form
with the Flask test client; its session cookie is then sent by the load generator. Two
gunicorn servers on 127.0.0.1 (`-w 2`, sync workers, as the README's deployment with
fewer workers for a 2-core machine): the app (bench/web_apps.py:admin) and a Flask app
whose only view returns "ok" (bench/web_apps.py:trivial).

Measured, each for --seconds, in --rounds rounds interleaved so that a burst of load from
elsewhere on the machine hits every endpoint alike; the best round of each counts:
  trivial  GET /                              200 "ok"
  page     GET /manage/providers/             200: what an admin gets on opening the page,
           its first page (50 of the N providers, sorted by name)
  poll     GET /manage/providers/status?stale=0&fp=<current>, with the headers htmx sends
           (what the page's poll sends while nothing changed)    -> 204
The load generator: --concurrency threads, each with its own keep-alive connection
(http.client; gunicorn's sync workers close after each response, so it reconnects then),
bounded by time and by --max-requests. Targets: poll/trivial >= 0.5, page/trivial >= 0.2.
Server CPU per request (gunicorn master + workers, from /proc) is printed too: it is less
sensitive than requests/second to other load on a shared machine.
Exit status non-zero only if the benchmark could not run (a missed target is reported).
"""
from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from urllib.parse import urlencode

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import (ROOT, fernet_key, free_port, make_app, process_cpu,  # noqa: E402
                          revision, verdict, wait_for_port, workdir)

GUNICORN = os.path.join(os.path.dirname(sys.executable), "gunicorn")
PASSWORD = "bench password 123"
# One browser signs in and then loads the page and polls: Flask-Login's session protection
# ties the session to the address and User-Agent it signed in from.
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) bench/web.py"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--providers", type=int, default=500)
    p.add_argument("--seconds", type=float, default=5.0, help="per endpoint and round")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=4, help="load generator threads")
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers per server")
    p.add_argument("--max-requests", type=int, default=200_000,
                   help="per endpoint and round, whatever the time")
    p.add_argument("--profile", action="store_true",
                   help="also cProfile 50 page and 500 poll requests in-process (test client)")
    args = p.parse_args(argv)
    if args.providers < 1 or args.seconds <= 0 or args.rounds < 1 or args.concurrency < 1:
        p.error("need providers >= 1, seconds > 0, rounds >= 1, concurrency >= 1")
    return args


# Setup ----------------------------------------------------------------------------------

def populate(app, n: int) -> None:
    """N providers as a busy installation has them, a site admin and a member."""
    from datetime import timedelta

    from provider_admin import crypto
    from provider_admin.extensions import db
    from provider_admin.models import (Organization, Provider, Role, Status, User, Workspace,
                                       utcnow)

    now = utcnow()
    with app.app_context():
        orgs = [Organization(name=f"org-{i}") for i in range(8)]
        admin = User(email="admin@example.com", username="admin", role=Role.ADMIN.value)
        admin.set_password(PASSWORD)
        member = User(email="member@example.com", username="member", role=Role.MEMBER.value,
                      organizations=orgs[:2])
        db.session.add_all([*orgs, admin, member])
        secret = crypto.encrypt('{"token": "bench-token"}')
        providers = []
        for i in range(n):
            status = (Status.ERROR if i % 10 == 3 else Status.PENDING if i % 25 == 7
                      else Status.READY)
            providers.append(Provider(
                name=f"provider-{i:04d}", namespace=f"ws-{i:04d}",
                cluster_address=f"https://cluster-{i:04d}.example.com:6443",
                credentials_encrypted=secret, credentials_kind="token",
                organizations=[orgs[i % 8], orgs[(i * 3 + 1) % 8]][: 1 + i % 2],
                status=status.value, kube_version="v1.33.1",
                status_category={"ready": "ready", "error": "unreachable",
                                 "pending": "not_deployed"}[status.value],
                status_message=None if status is Status.READY else
                "Cannot connect to the cluster: connection timed out after 5 s.",
                status_warnings=["The token expires in 3 days: renew it."] if i % 17 == 0 else None,
                last_checked_at=now - timedelta(seconds=i % 90), last_ready_at=now,
                next_check_at=now + timedelta(seconds=30), display_version=1 + i % 5,
                cordoned=i % 50 == 9, cordon_reason="maintenance" if i % 50 == 9 else None,
            ))
        db.session.add_all(providers)
        db.session.flush()
        db.session.add_all([
            Workspace(name=f"ws{i}", owner=member, organization=orgs[i % 2],
                      provider=providers[(i * 7) % n], image="codercom/enterprise-base",
                      cpu="2", memory="4Gi", disk="10Gi", status="running")
            for i in range(min(300, 3 * n))
        ])
        db.session.commit()


def sign_in(app) -> tuple[str, str, str, str]:
    """Sign in through the login form; returns (session cookie, CSRF token, the poll's GET
    path exactly as the page's htmx sends it, the versions the page's rows show)."""
    app.config["WTF_CSRF_ENABLED"] = True
    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = USER_AGENT
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or \
        re.search(r'name="csrf_token" value="([^"]+)"', page)
    if not token:
        raise RuntimeError("no CSRF token on /login")
    response = client.post("/login", data={"email": "admin@example.com", "password": PASSWORD,
                                           "csrf_token": token.group(1)})
    if response.status_code != 303:
        raise RuntimeError(f"sign-in answered {response.status_code}")
    # The page puts the CSRF token in the session (signing in starts a new one without it):
    # the cookie to send is the one after it, as a browser has it.
    page = client.get("/manage/providers/").get_data(as_text=True)
    cookie = client.get_cookie("session")
    csrf = re.search(r'"X-CSRFToken": "([^"]+)"', page)
    url = re.search(r'<div hx-get="([^"]+)" hx-trigger="every', page)
    fp = re.search(r'"fp": "([^"]+)"', page)
    if not (csrf and url and fp):
        raise RuntimeError("the providers page has no poll element or no CSRF token")
    url = url.group(1).replace("&amp;", "&")
    # The stale statuses banner's state, as the poll sends it (hx-include), then the fingerprint.
    stale = re.search(r'name="stale" value="([01])"', page)
    query = {"stale": stale.group(1)} if stale else {}
    poll_path = f"{url}{'&' if '?' in url else '?'}{urlencode({**query, 'fp': fp.group(1)})}"
    return cookie.value, csrf.group(1), poll_path, known_versions(page)


def known_versions(page: str) -> str:
    """What the page's knownVersions() in static/js/app.js posts: id.version.workspaces per row."""
    rows = re.findall(r'data-provider-id="(\d+)" data-version="(\d+)" data-workspaces="(\d+)"', page)
    if not rows:
        raise RuntimeError("the providers page shows no rows")
    return ",".join(".".join(row) for row in rows)


class Gunicorn:
    """`gunicorn -w N -b 127.0.0.1:PORT APP` from the repository root, stopped on exit."""

    def __init__(self, app: str, workers: int, env: dict, log_path: str):
        self.app, self.workers, self.env = app, workers, env
        self.port = free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Gunicorn:
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [GUNICORN, "-w", str(self.workers), "-b", f"127.0.0.1:{self.port}",
             "--log-level", "warning", self.app],
            cwd=ROOT, env={**os.environ, **self.env}, stdout=self.log, stderr=self.log)
        try:
            wait_for_port(self.port, 60, self.proc)
        except Exception:
            self.__exit__()
            raise
        return self

    def pids(self) -> list[int]:
        """The master and its workers."""
        pids = [self.proc.pid]
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == self.proc.pid:
                    pids.append(int(entry))
        return pids

    def cpu(self) -> float:
        """CPU seconds used so far by the master and its current workers."""
        return process_cpu(self.pids())

    def __exit__(self, *exc) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # graceful: the master stops its workers
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                for pid in self.pids()[1:]:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
        self.log.close()


# Load -----------------------------------------------------------------------------------

class Target:
    def __init__(self, name: str, server: Gunicorn, path: str, status: int,
                 headers: dict | None = None):
        self.name, self.server, self.path, self.status = name, server, path, status
        self.headers = headers or {}


def get(target: Target, conn: http.client.HTTPConnection | None = None):
    """One GET; returns (connection to reuse or None, status, body, response headers)."""
    if conn is None:
        conn = http.client.HTTPConnection("127.0.0.1", target.server.port, timeout=30)
    conn.request("GET", target.path, headers=target.headers)
    response = conn.getresponse()
    body = response.read()
    if response.will_close:
        conn.close()
        conn = None
    return conn, response.status, body, response.headers


def load(target: Target, seconds: float, concurrency: int, max_requests: int) -> dict:
    """Keep `concurrency` requests in flight for `seconds` (or `max_requests`)."""
    deadline = time.monotonic() + seconds
    per_thread = max(1, max_requests // concurrency)
    counts, errors, latencies = [0] * concurrency, [], [0.0] * concurrency

    def worker(index: int) -> None:
        conn = None
        done, busy = 0, 0.0
        try:
            while done < per_thread and time.monotonic() < deadline:
                t0 = time.perf_counter()
                conn, status, *_ = get(target, conn)
                busy += time.perf_counter() - t0
                if status != target.status:
                    errors.append(status)
                    return
                done += 1
        except (OSError, http.client.HTTPException) as exc:
            errors.append(repr(exc))
        finally:
            counts[index], latencies[index] = done, busy
            if conn is not None:
                conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    server_cpu0, client_cpu0 = target.server.cpu(), time.process_time()
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 120)
    elapsed = time.monotonic() - started
    done = sum(counts)
    if errors:
        raise RuntimeError(f"{target.name}: expected {target.status}, got {errors[:3]}")
    return {"requests": done, "seconds": elapsed, "rps": done / elapsed,
            "latency_ms": 1000 * sum(latencies) / max(1, done),
            "server_cpu_ms": 1000 * (target.server.cpu() - server_cpu0) / max(1, done),
            "client_cpu": (time.process_time() - client_cpu0) / elapsed}


def best_of_rounds(targets: list[Target], args) -> dict[str, dict]:
    """Warm each target up, then load them in turn for args.rounds rounds; the best round of
    each (the one least disturbed by the rest of the machine)."""
    for target in targets:  # warm up: imports, first queries, template compilation
        load(target, min(1.0, args.seconds), args.concurrency, 200)
    best: dict[str, dict] = {}
    for round_ in range(1, args.rounds + 1):
        for target in targets:
            result = load(target, args.seconds, args.concurrency, args.max_requests)
            print(f"round {round_} {target.name:8s} {result['rps']:8.1f} req/s  "
                  f"({result['requests']} in {result['seconds']:.1f} s; latency "
                  f"{result['latency_ms']:.1f} ms; server CPU {result['server_cpu_ms']:.2f}"
                  f" ms/req; client CPU {result['client_cpu']:.2f} cores)")
            if target.name not in best or result["rps"] > best[target.name]["rps"]:
                best[target.name] = result
    return best


def check_targets(targets: list[Target], providers: int) -> None:
    """Each target answers what a browser would see, before anything is timed."""
    for target in targets:
        conn, status, body, headers = get(target)
        if conn is not None:
            conn.close()
        if status != target.status:
            raise RuntimeError(f"{target.name}: {target.path[:80]} answered {status}, "
                               f"expected {target.status}: {body[:200]!r}")
        if target.name != "trivial" and headers.get("Set-Cookie"):
            raise RuntimeError(f"{target.name} sets a cookie on every request: the session "
                               f"is written again each time")
        if target.name == "page":
            from provider_admin.providers.scope import PAGE_SIZE

            rows = body.count(b'data-provider-id="')
            if rows != min(providers, PAGE_SIZE) or f" of {providers} provider".encode() not in body:
                raise RuntimeError(f"the page shows {rows} rows, expected the first "
                                   f"{min(providers, PAGE_SIZE)} of {providers}")
            print(f"page: {len(body) / 1024:.0f} KiB of HTML, the first {rows} of {providers} "
                  f"providers")
        if target.name == "poll":
            print(f"poll: request line of {len(target.path) + 15} bytes "
                  f"(gunicorn refuses more than 4094 by default)")


def poll_after_ten_updates(app, server: Gunicorn, headers: dict, poll_path: str,
                           known: str) -> list[tuple[str, int, int, int]]:
    """The poll as the page sends it once every row's display_version grew by 10 (a few
    status changes each): the GET, answered with providerStatusStale, then the POST of the
    versions shown, answered with the changed rows. Returns (request, status, request line
    or body bytes, rows in the answer) for each. Changes the database: run it last."""
    from sqlalchemy import update

    from provider_admin.caches import FINGERPRINT_SECONDS
    from provider_admin.extensions import db
    from provider_admin.models import Provider

    with app.app_context():
        db.session.execute(update(Provider).values(display_version=Provider.display_version + 10))
        db.session.commit()
        db.session.remove()
    time.sleep(FINGERPRINT_SECONDS)  # what another process writes reaches the poll this much later
    results = []
    conn, status, *_ = get(Target("poll", server, poll_path, 200, headers))
    results.append(("GET", status, len(poll_path) + len("GET  HTTP/1.1"), 0))
    if conn is not None:
        conn.close()
    form = urlencode({"fp": poll_path.rpartition("fp=")[2], "known": known})
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("POST", poll_path.partition("?fp=")[0].partition("&fp=")[0], body=form,
                 headers={**headers, "Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    results.append(("POST", response.status, len(form), body.count(b'<tr id="provider-row-')))
    return results


def page_cost_in_process(app, cookie: str, count: int = 30) -> dict[str, float]:
    """CPU ms per page request in this process (test client, no gunicorn): with the list
    fragment served again (nothing changed within the second); with the list rendered again
    from cached rows (it was rendered more than a second ago, or something changed); and with
    both caches emptied before every request, i.e. when every row shown has changed since it
    was last rendered."""
    from provider_admin.caches import caches

    with app.app_context():
        kept = caches()
    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = USER_AGENT
    client.set_cookie("session", cookie, domain="localhost")
    client.get("/manage/providers/")  # warm up
    costs = {}
    for label, lists, cached_rows in (("list kept", True, True), ("list rendered", False, True),
                                      ("every row rendered", False, False)):
        cpu = 0.0
        for attempt in range(count + 1):  # the first one warms up (its templates, its rows)
            if not lists:
                kept.lists.clear()
            if not cached_rows:
                kept.rows.clear()
            started = time.process_time()
            client.get("/manage/providers/")
            cpu += (time.process_time() - started) if attempt else 0.0
        costs[label] = 1000 * cpu / count
    return costs


def profile_in_process(app, cookie: str, poll_path: str) -> None:
    """Where a request's time goes, without gunicorn: cProfile of the test client."""
    import cProfile
    import pstats

    app.config["WTF_CSRF_ENABLED"] = True
    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = USER_AGENT
    client.set_cookie("session", cookie, domain="localhost")
    for label, path, count in (("page", "/manage/providers/", 50), ("poll", poll_path, 500)):
        client.get(path)  # warm up
        prof = cProfile.Profile()
        started = time.perf_counter()
        prof.enable()
        for _ in range(count):
            client.get(path)
        prof.disable()
        print(f"\nProfile of {count} {label} requests in-process "
              f"({1000 * (time.perf_counter() - started) / count:.1f} ms each under the profiler):")
        stats = pstats.Stats(prof, stream=sys.stdout)
        stats.sort_stats("cumulative").print_stats(25)


# Main -----------------------------------------------------------------------------------

def main(argv=None) -> int:
    args = parse_args(argv)
    folder = workdir("bench-web")
    try:
        return run(args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(args, folder: str) -> int:
    # No scheduler runs here: an interval longer than the run keeps the statuses fresh (no
    # stale statuses banner), the state of a site whose scheduler runs.
    os.environ["PROVIDER_ADMIN_CHECK_INTERVAL"] = "3600"
    db_url = f"sqlite:///{os.path.join(folder, 'bench.sqlite')}"
    secret, key = "bench-web-secret", fernet_key()
    app = make_app(db_url, SECRET_KEY=secret, ENCRYPTION_KEY=key)
    populate(app, args.providers)
    cookie, csrf, poll_path, known = sign_in(app)
    print(f"providers {args.providers}, gunicorn -w {args.workers} (sync) per server, "
          f"{args.concurrency} client threads, {args.seconds:g} s x {args.rounds} rounds, "
          f"{os.cpu_count()} CPUs; app at {revision()}")
    env = {"BENCH_DATABASE_URL": db_url, "BENCH_SECRET_KEY": secret,
           "BENCH_ENCRYPTION_KEY": key, "PROVIDER_ADMIN_INSTANCE_PATH":
           os.environ["PROVIDER_ADMIN_INSTANCE_PATH"]}
    headers = {"Cookie": f"session={cookie}", "User-Agent": USER_AGENT}
    with Gunicorn("bench.web_apps:trivial()", args.workers, env,
                  os.path.join(folder, "trivial.log")) as trivial_server, \
            Gunicorn("bench.web_apps:admin()", args.workers, env,
                     os.path.join(folder, "admin.log")) as admin_server:
        targets = [
            Target("trivial", trivial_server, "/", 200),
            Target("page", admin_server, "/manage/providers/", 200, headers),
            Target("poll", admin_server, poll_path, 204, {
                **headers, "HX-Request": "true", "X-CSRFToken": csrf,
                "HX-Current-URL": f"http://127.0.0.1:{admin_server.port}/manage/providers/"}),
        ]
        try:
            check_targets(targets, args.providers)
            best = best_of_rounds(targets, args)
            long_poll = poll_after_ten_updates(app, admin_server, targets[2].headers, poll_path, known)
        except RuntimeError as exc:
            for server in (trivial_server, admin_server):
                with open(server.log_path) as log:
                    tail = log.read()[-2000:]
                if tail.strip():
                    print(f"--- gunicorn log ({server.app}):\n{tail}")
            raise SystemExit(f"ERROR: {exc}")
    trivial, page, poll = best["trivial"], best["page"], best["poll"]
    print()
    print("Results (best round of each)")
    for name, result in best.items():
        print(f"  {name:8s} {result['rps']:8.1f} req/s, server CPU {result['server_cpu_ms']:.2f} ms/req")
    verdict("poll / trivial (req/s)", poll["rps"] / trivial["rps"], 0.5)
    verdict("page / trivial (req/s)", page["rps"] / trivial["rps"], 0.2)
    print(f"  (server CPU per request, trivial / x: poll "
          f"{trivial['server_cpu_ms'] / max(poll['server_cpu_ms'], 1e-9):.3f}, page "
          f"{trivial['server_cpu_ms'] / max(page['server_cpu_ms'], 1e-9):.3f})")
    (_, get_status, line, _), (_, post_status, form, rows) = long_poll
    print(f"  poll once every row was re-rendered 10 more times: GET request line {line} bytes "
          f"-> {get_status}, then POST of {form} bytes of versions -> {post_status} with {rows} rows"
          + ("" if (get_status, post_status) == (200, 200) and rows else
             "  ! the page's poll no longer works"))
    costs = page_cost_in_process(app, cookie)
    print("  page CPU in-process (test client): " + ", ".join(
        f"{label} {ms:.1f} ms" for label, ms in costs.items()))
    if args.profile:
        profile_in_process(app, cookie, poll_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
