"""Schedulers that go away mid-sweep, as real `flask scheduler` processes on the test database
with providers on the Kubernetes API emulator: one killed with SIGKILL (its claims expire
after the lease and the other process covers its providers), one stopped with SIGTERM or
SIGINT (it finishes or hands back its checks within the grace, then exits 0)."""
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from provider_admin import crypto
from provider_admin.checks.scheduler import TICK_SECONDS
from provider_admin.checks.sweeper import WRITE_SECONDS, Stopped, Sweeper
from provider_admin.extensions import db
from provider_admin.models import NotificationDelivery, NotificationTarget, Provider, ProviderCheck, TargetKind, utcnow
from provider_admin.notifications import channels, events

from .servers import ROOT, environment, free_port, scheduler

pytestmark = pytest.mark.usefixtures("app_context")

INTERVAL, TIMEOUT = 3.0, 3.0
LONG_LEASE = 300.0  # a provider taken again well before this was handed back, not expired


def settings(**overrides) -> dict:
    return {"CHECK_INTERVAL": INTERVAL, "CHECK_TIMEOUT": TIMEOUT, "CHECK_LEASE": LONG_LEASE,
            "CHECK_POOL_SIZE": 4, "CHECK_PERMISSIONS_EVERY": 3600, **overrides}


def started(database_url, tmp_path, name, **overrides) -> subprocess.Popen:
    process = scheduler(environment(database_url, tmp_path / name, **settings(**overrides)))
    line = process.stdout.readline()  # imports take seconds on a busy machine
    assert line.startswith("Checking providers"), line
    return process


def worker_of(process) -> str:
    """What its claims and results name it by: "host:pid:run"."""
    return f"%:{process.pid}:%"


def claimed_by(process) -> set[int]:
    db.session.expire_all()
    return set(db.session.scalars(sa.select(Provider.id).where(Provider.claimed_by.like(worker_of(process)))))


def wait_until(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        assert time.monotonic() < deadline, f"waited {seconds} s for {what}"
        time.sleep(0.05)
    return value


def checks(since=None) -> dict[int, list[tuple]]:
    """Scheduled checks by provider, oldest first: (checked_at, worker)."""
    db.session.expire_all()
    query = sa.select(ProviderCheck.provider_id, ProviderCheck.checked_at, ProviderCheck.worker).where(
        ProviderCheck.trigger == "scheduled").order_by(ProviderCheck.checked_at)
    if since is not None:
        query = query.where(ProviderCheck.checked_at >= since)
    found = defaultdict(list)
    for provider_id, at, worker in db.session.execute(query):
        found[provider_id].append((at, worker))
    return found


def end(*processes):
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def ready_providers(api, kube_provider, prefix: str, count: int) -> list[Provider]:
    """Ready and recently verified: routine checks, the steady state."""
    made = []
    for i in range(count):
        name = f"{prefix}{i}"
        api.deploy_marker(name, namespace=f"ns-{name}")
        made.append(kube_provider(api, name=name, namespace=f"ns-{name}", status="ready",
                                  last_permissions_check_at=utcnow()))
    return made


# SIGKILL --------------------------------------------------------------------------------------

LEASE, SLOW = 6.0, 1.0
# Claimed a tick late, found after the lease by a tick, checked slowly, on a busy machine.
TOLERANCE = 2 * TICK_SECONDS + SLOW + 2.0


def test_a_killed_schedulers_providers_are_covered_within_interval_plus_lease(
        database_url, tmp_path, kube_api, kube_provider):
    kube_api.slow("get /version", SLOW)
    with type(kube_api)() as fast:
        providers = ready_providers(kube_api, kube_provider, "slow", 6) + \
            ready_providers(fast, kube_provider, "fast", 6)
        a = started(database_url, tmp_path, "a", CHECK_LEASE=LEASE)
        b = started(database_url, tmp_path, "b", CHECK_LEASE=LEASE)
        try:
            wait_until(lambda: len(checks()) == len(providers), 60, "a first check of every provider")
            # Mid-sweep: the moment `a` holds claims, its checks under way.
            orphans = wait_until(lambda: claimed_by(a), 60, "a claim of process a")
            a.kill()
            a.wait(10)
            killed_at = utcnow()
            time.sleep(LEASE + 2 * INTERVAL + TOLERANCE)
            observed_until = utcnow()
        finally:
            end(a, b)
    history = checks()
    survivor = {w for rows in history.values() for _, w in rows if f":{b.pid}:" in w}
    assert len(survivor) == 1
    for provider in providers:
        times = [at for at, _ in history[provider.id]] + [observed_until]
        gaps = [(later - earlier).total_seconds() for earlier, later in zip(times, times[1:])]
        assert max(gaps) <= INTERVAL + LEASE + TOLERANCE, (provider.name, gaps)
    for provider_id in orphans:
        after = [w for at, w in history[provider_id] if at > killed_at]
        assert after and set(after) <= survivor, (provider_id, after)
    assert claimed_by(a) == set(), "the dead process's claims were taken over"


# SIGTERM and SIGINT ---------------------------------------------------------------------------

def stop(process, signum) -> float:
    """Send the signal; the seconds until the process exited (0)."""
    sent = time.monotonic()
    process.send_signal(signum)
    assert process.wait(120) == 0
    return time.monotonic() - sent


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_scheduler_writes_the_checks_under_way_then_exits(
        signum, database_url, tmp_path, kube_api, kube_provider):
    grace, slow = 15.0, 2.0
    kube_api.slow("get /version", slow)
    providers = ready_providers(kube_api, kube_provider, "p", 4)  # one each for the 4 threads
    a = started(database_url, tmp_path, "a", CHECK_SHUTDOWN_GRACE=grace)
    try:
        wait_until(lambda: len(claimed_by(a)) == 4, 60, "the 4 claims")
        wait_until(lambda: kube_api.requests.count("GET /version") >= 4, 30, "the 4 checks under way")
        signalled_at = utcnow()
        took = stop(a, signum)
        out = a.stdout.read()
    finally:
        end(a)
    assert took < grace, "the checks ended in about their delay, and the process with them"
    written = checks(since=signalled_at)
    assert sorted(written) == sorted(p.id for p in providers), written
    assert all(f":{a.pid}:" in w for rows in written.values() for _, w in rows)
    assert claimed_by(a) == set()
    assert f"{signal.Signals(signum).name}: stopping" in out
    assert "Stopped: check results written: 4; checks abandoned at the end of the grace: 0;" in out, out


def test_checks_that_outlast_the_grace_are_handed_back_to_another_scheduler(
        database_url, tmp_path, kube_api, kube_provider):
    grace = 3.0
    kube_api.slow("get /version", 600)  # clusters that accept and never answer in time
    providers = ready_providers(kube_api, kube_provider, "p", 4)
    a = started(database_url, tmp_path, "a", CHECK_SHUTDOWN_GRACE=grace, CHECK_TIMEOUT=120)
    b = None
    try:
        wait_until(lambda: len(claimed_by(a)) == 4, 60, "the 4 claims")
        wait_until(lambda: kube_api.requests.count("GET /version") >= 4, 30, "the 4 checks under way")
        b = started(database_url, tmp_path, "b")  # idle: a holds every provider for the lease
        kube_api.unslow()  # for b's checks; a's stay stuck
        signalled_at = utcnow()
        took = stop(a, signal.SIGTERM)
        out = a.stdout.read()
        handed_back = utcnow()
        db.session.expire_all()
        claims = db.session.execute(sa.select(Provider.claimed_by, Provider.next_check_at)).all()
        wait_until(lambda: len(checks(since=signalled_at)) == 4, 30, "b's checks")
        taken = checks(since=signalled_at)
    finally:
        end(a, *([b] if b else []))
    assert grace * 0.8 <= took <= grace + WRITE_SECONDS + 5, took
    assert "written: 0; checks abandoned at the end of the grace: 4; claims handed back: 4 providers" in out, out
    for by, due in claims:  # released, and due at once (unless b has taken it already)
        assert by is None and due <= handed_back or f":{b.pid}:" in by, (by, due)
    assert sorted(taken) == sorted(p.id for p in providers)
    assert all(f":{b.pid}:" in w for rows in taken.values() for _, w in rows), taken
    assert claimed_by(a) == set()


@contextmanager
def silent_webhook():
    """A webhook address that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # connections wait in the backlog, never accepted
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"


def test_a_notification_that_outlasts_the_grace_is_handed_back(database_url, tmp_path):
    grace = 3.0
    with silent_webhook() as url:
        target = NotificationTarget(name="hook", kind=TargetKind.WEBHOOK.value, url_origin=channels.origin(url),
                                    url_encrypted=crypto.encrypt(url), secret_encrypted=crypto.encrypt("whsec_x"))
        db.session.add(target)
        db.session.commit()
        events.enqueue("provider.status", "east is down", "east is down", {})
        db.session.commit()
        a = started(database_url, tmp_path, "a", CHECK_SHUTDOWN_GRACE=grace, NOTIFY_TIMEOUT=120,
                    NOTIFY_LEASE=LONG_LEASE)

        def delivery():
            db.session.expire_all()
            return db.session.scalars(sa.select(NotificationDelivery)).one()
        try:
            wait_until(lambda: delivery().claimed_by, 60, "the delivery's claim")
            took = stop(a, signal.SIGTERM)
            out = a.stdout.read()
        finally:
            end(a)
    assert grace * 0.8 <= took <= grace + WRITE_SECONDS + 5, took
    assert "claims handed back: 0 providers, 1 notifications." in out, out
    handed_back = delivery()
    assert (handed_back.status, handed_back.attempts, handed_back.claimed_by, handed_back.claimed_until) == (
        "pending", 0, None, None)


def test_flask_run_stops_its_scheduler_at_exit(database_url, tmp_path, kube_api, kube_provider):
    """The one-command start: Ctrl+C ends `flask run`, and its scheduler writes the checks
    under way and leaves no claim."""
    kube_api.slow("get /version", 2.0)
    providers = ready_providers(kube_api, kube_provider, "p", 4)
    env = environment(database_url, tmp_path / "run", **settings(CHECK_SHUTDOWN_GRACE=15))
    web = subprocess.Popen([sys.executable, "-m", "flask", "run", "--no-reload", "--port", str(free_port())],
                           cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: len(claimed_by(web)) == 4, 60, "the 4 claims")
        wait_until(lambda: kube_api.requests.count("GET /version") >= 4, 30, "the 4 checks under way")
        signalled_at = utcnow()
        stop(web, signal.SIGINT)
    finally:
        end(web)
    assert sorted(checks(since=signalled_at)) == sorted(p.id for p in providers)
    assert claimed_by(web) == set()


def test_a_claimed_check_not_started_is_handed_back_at_once(app, kube_api, kube_provider):
    """One thread, two claims: the second check waits in the pool's queue. Stopping hands it
    back without running it, and writes the first."""
    app.config["CHECK_POOL_SIZE"] = 1
    kube_api.slow("get /version", 2.0)
    running, queued = ready_providers(kube_api, kube_provider, "p", 2)
    sweeper = Sweeper(app, worker="a")
    assert sweeper.tick() == 2
    wait_until(lambda: kube_api.requests.count("GET /version") == 1, 30, "the first check under way")
    before = utcnow()
    stopped = []
    stopping = threading.Thread(target=lambda: stopped.append(sweeper.shutdown(grace=15)))
    stopping.start()

    def claims():
        db.session.expire_all()
        return dict(db.session.execute(sa.select(Provider.name, Provider.claimed_by)).all())
    # At once: while the first check still runs.
    assert wait_until(lambda: claims()["p1"] is None, 30, "the hand-back") and claims()["p0"] == "a"
    stopping.join(30)
    assert stopped == [Stopped(finished=1, abandoned=0, handed_back=1)]
    db.session.expire_all()
    assert kube_api.requests.count("GET /version") == 1, "the second check never started"
    assert list(checks()) == [running.id]
    assert (queued.claimed_by, queued.claimed_until) == (None, None) and queued.next_check_at <= utcnow()
    assert running.claimed_by is None and running.last_checked_at >= before
