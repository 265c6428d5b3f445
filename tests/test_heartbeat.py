"""The scheduler heartbeat with real scheduler processes (`flask scheduler` in a subprocess,
on the test database, checking every second): their rows, the stale statuses banner on the
providers pages and in the badge poll's answer, and who ran a provider's last check."""
import os
import re
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa

from provider_admin.checks.heartbeat import START_COMMAND
from provider_admin.database import script_head
from provider_admin.extensions import db
from provider_admin.models import ProviderCheck, SchedulerHeartbeat, utcnow

from .conftest import ENCRYPTION_KEY, statements_of
from .test_scheduler_processes import stop
from .test_status_poll import known_of, poll_of

ROOT = Path(__file__).resolve().parent.parent
INTERVAL = 1
STALE_TEXT = "Statuses are stale: no health-check scheduler has run"
# Three intervals, then the heartbeat read at most an interval ago, then a busy machine's leeway.
STALE_WITHIN = 3 * INTERVAL + INTERVAL + 2


@pytest.fixture
def app_config():
    return {"CHECK_INTERVAL": INTERVAL, "POLL_SECONDS": 1}


def start_scheduler(database_url, tmp_path, name):
    """`flask --app app scheduler`, as the README starts it, until stop()."""
    env = {**os.environ, "DATABASE_URL": database_url, "PROVIDER_ADMIN_INSTANCE_PATH": str(tmp_path / name),
           "PROVIDER_ADMIN_SECRET_KEY": "test-secret", "PROVIDER_ADMIN_ENCRYPTION_KEY": ENCRYPTION_KEY,
           "PROVIDER_ADMIN_AUTO_MIGRATE": "false", "PROVIDER_ADMIN_CHECK_INTERVAL": str(INTERVAL),
           "PROVIDER_ADMIN_CHECK_POOL_SIZE": "2", "PROVIDER_ADMIN_CHECK_TIMEOUT": "1.0"}
    process = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "scheduler"], cwd=ROOT,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = process.stdout.readline()
    assert line.startswith("Checking providers"), line
    return process


@pytest.fixture
def schedulers(database_url, tmp_path):
    """Start scheduler processes by name; all are stopped at the end."""
    started = []

    def start(name="a"):
        started.append(start_scheduler(database_url, tmp_path, name))
        return started[-1]

    yield start
    stop(*started)


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.1)


def heartbeats():
    db.session.expire_all()
    rows = db.session.scalars(sa.select(SchedulerHeartbeat).order_by(SchedulerHeartbeat.id)).all()
    db.session.commit()  # no transaction left open between reads
    return rows


class OpenPage:
    """A providers page as a browser keeps it open: its poll, its rows' versions and the banner
    it shows, each updated from the poll's answers as htmx would."""

    def __init__(self, client, actions, url="/manage/providers/"):
        self.client, self.actions = client, actions
        html = client.get(url).text
        self.poll_url, self.fp = poll_of(html)
        self.known = dict(item.split(".", 1) for item in known_of(html).split(",") if item) or \
            dict(re.findall(r'data-provider-id="(\d+)" data-version="(\d+)"', html))
        self.banner = banner_of(html)

    @property
    def shown(self) -> str:
        return re.search(r'id="stale-shown" name="stale" value="([01])"', self.banner).group(1)

    def poll(self):
        """The GET the poll sends (hx-include adds the banner's state)."""
        query = urlencode({"fp": self.fp, "stale": self.shown})
        return self.client.get(f"{self.poll_url}{'&' if '?' in self.poll_url else '?'}{query}",
                               headers={"HX-Request": "true"})

    def sync(self) -> str:
        """One round of the poll: "unchanged" (204), or the POST it then sends, applied."""
        if self.poll().status_code == 204:
            return "unchanged"
        known = ",".join(f"{ident}.{version}" for ident, version in self.known.items())
        answer = self.actions.post(self.poll_url, {"fp": self.fp, "known": known, "stale": self.shown},
                                   htmx=True)
        assert answer.status_code == 200
        self.fp = re.search(r'"fp": "([^"]+)"', answer.text).group(1)
        for item in known_of(answer.text).split(","):
            if item:
                ident, version = item.split(".", 1)
                self.known[ident] = version
        # A provider page's status block, out of band.
        for version, ident in re.findall(r'data-version="(\d+)" data-provider-id="(\d+)"', answer.text):
            self.known[ident] = version
        if 'id="stale-banner"' in answer.text:
            self.banner = banner_of(answer.text)
            assert 'hx-swap-oob="true"' in self.banner
            return "banner"
        return "rows"

    def wait_for_banner(self, shown: str, timeout: float, what: str) -> str:
        wait_for(lambda: self.sync() == "banner" and self.shown == shown, timeout, what)
        return self.banner


def banner_of(html: str) -> str:
    """The stale statuses banner's element (_stale_banner.html)."""
    found = re.search(r'<div id="stale-banner".*?<input [^>]*>(?:\s*<div class="flash.*?</div>)?\s*</div>', html, re.S)
    assert found, html
    return found.group(0)


def test_without_a_scheduler_the_banner_comes_after_three_intervals_and_goes_when_one_starts(
        app, client, actions, make_provider, schedulers):
    started = time.monotonic()  # the web app was made just before: its own start counts
    actions.login("manager")
    make_provider("east")
    page = OpenPage(client, actions)
    assert page.shown == "0" and STALE_TEXT not in page.banner
    assert page.sync() == "unchanged"

    banner = page.wait_for_banner("1", STALE_WITHIN, "the poll brings the banner: no scheduler ran")
    assert time.monotonic() - started >= 3 * INTERVAL  # not before three intervals
    assert f"{STALE_TEXT} yet." in banner and f"<code>{START_COMMAND}</code>" in banner
    assert page.sync() == "unchanged"  # the page shows it now: nothing more to say
    assert STALE_TEXT in client.get("/manage/providers/").text  # and a page opened now has it

    process = schedulers()
    assert wait_for(heartbeats, 10, "the scheduler's first tick")[0].pid == process.pid
    banner = page.wait_for_banner("0", INTERVAL + 3, "the poll takes the banner away: a scheduler runs")
    assert STALE_TEXT not in banner and STALE_TEXT not in client.get("/manage/providers/").text

    stop(process)
    banner = page.wait_for_banner("1", STALE_WITHIN, "the poll brings the banner back: the scheduler stopped")
    assert f"{STALE_TEXT} since" in banner and "<time datetime=" in banner


def test_the_provider_page_shows_and_loses_the_banner_too(app, client, actions, make_provider, schedulers):
    actions.login("admin")
    provider = make_provider("east")
    page = OpenPage(client, actions, f"/manage/providers/{provider.id}")
    assert STALE_TEXT in page.wait_for_banner("1", STALE_WITHIN, "the provider page's poll brings the banner")
    schedulers()
    assert STALE_TEXT not in page.wait_for_banner("0", 10, "the provider page's poll takes it away")


def test_two_processes_are_both_recorded_and_keep_ticking(app_context, schedulers):
    a, b = schedulers("a"), schedulers("b")
    rows = wait_for(lambda: len(heartbeats()) == 2 and heartbeats(), 10, "both processes' rows")
    assert {row.pid for row in rows} == {a.pid, b.pid}
    assert {row.host for row in rows} == {socket.gethostname()}
    assert len({row.run_id for row in rows}) == 2 and all(re.fullmatch(r"[0-9a-f]{16}", r.run_id) for r in rows)
    assert {(row.interval, row.version) for row in rows} == {(float(INTERVAL), script_head())}
    first = {row.pid: row.last_tick_at for row in rows}
    later = wait_for(lambda: (rows := heartbeats()) and all(r.last_tick_at > first[r.pid] for r in rows) and rows,
                     5, "both processes tick again")
    assert all(row.started_at <= row.last_tick_at for row in later)
    stop(a)
    time.sleep(2 * INTERVAL + 0.5)
    ticks = {row.pid: row.last_tick_at for row in heartbeats()}
    assert set(ticks) == {a.pid, b.pid}, "a stopped process's row stays (until it is forgotten)"
    assert ticks[b.pid] > ticks[a.pid] + timedelta(seconds=INTERVAL)


def test_rows_of_processes_dead_for_a_day_are_forgotten(app_context, schedulers):
    now = utcnow()
    for days, pid in ((3, 11), (2, 12)):
        db.session.add(SchedulerHeartbeat(run_id=f"{pid:016x}", host="gone", pid=pid, interval=30.0, version="0011",
                                          started_at=now - timedelta(days=days, hours=1),
                                          last_tick_at=now - timedelta(days=days)))
    db.session.add(SchedulerHeartbeat(run_id="f" * 16, host="recent", pid=13, interval=30.0, version="0012",
                                      started_at=now - timedelta(hours=2), last_tick_at=now - timedelta(hours=1)))
    db.session.commit()
    process = schedulers()
    rows = wait_for(lambda: any(r.pid == process.pid for r in heartbeats()) and heartbeats(), 10, "its row")
    assert sorted(row.host for row in rows) == ["recent", socket.gethostname()]


def test_the_provider_page_names_the_process_of_the_last_check(app, client, actions, make_provider, schedulers):
    user = actions.login("manager")
    # Refused at once: the scheduler records an Error, and which process found it.
    provider = make_provider("east", cluster_address="https://127.0.0.1:1")
    process = schedulers()
    wait_for(lambda: db.session.scalar(sa.select(ProviderCheck.id).where(ProviderCheck.trigger == "scheduled")),
             15, "a scheduled check")
    stop(process)
    db.session.commit()
    html = client.get(f"/manage/providers/{provider.id}").text
    named = f"Scheduler on {socket.gethostname()} (pid {process.pid})"
    assert re.search(rf"<dt>Last check by</dt><dd>{re.escape(named)}</dd>", html), html
    assert f"<td>{named}</td>" in html  # and in the history

    assert actions.post(f"/manage/providers/{provider.id}/check", {"from": "page"}).status_code == 303
    html = client.get(f"/manage/providers/{provider.id}").text
    assert f"<dt>Last check by</dt><dd>Check now by {user.username}</dd>" in html
    assert f"<td>{named}</td>" in html  # the earlier one keeps its process


def test_members_never_get_the_banner(app, client, actions, make_provider):
    actions.login("member")
    time.sleep(3 * INTERVAL + 0.2)
    assert client.get("/manage/providers/").status_code == 403
    assert client.get("/manage/providers/status?fp=1-0&stale=0", headers={"HX-Request": "true"}).status_code == 403
    assert STALE_TEXT not in client.get("/workspaces/").text


def test_the_unchanged_poll_reads_the_heartbeat_at_most_once_a_second(app, client, actions, make_provider):
    actions.login("manager")
    make_provider("east")
    page = OpenPage(client, actions)
    time.sleep(INTERVAL + 0.1)  # what the page read has expired
    statements, response = statements_of(page.poll)
    assert response.status_code == 204
    assert sum("scheduler_heartbeats" in s for s in statements) == 1 and len(statements) <= 3, statements
    statements, response = statements_of(page.poll)
    assert response.status_code == 204 and statements == []
