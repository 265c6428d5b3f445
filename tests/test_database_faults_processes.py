"""SPEC §11 in production's shape: gunicorn with two workers and the `flask scheduler` process
reach PostgreSQL through a TCP proxy that the test cuts, and their backends are ended with
pg_terminate_backend. Nothing crashes: the same processes answer 200 and check again when the
database is back, and every check the clusters saw is in the history exactly once."""
import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from provider_admin.extensions import db
from provider_admin.models import ProviderCheck, SchedulerHeartbeat, utcnow
from tests.conftest import PASSWORD, TEST_DATABASE_URL

from .servers import environment, gunicorn, scheduler
from .test_database_faults import MARKER, MESSAGE, application_name, proxy, terminate, through  # noqa: F401

pytestmark = [pytest.mark.usefixtures("app_context"),
              pytest.mark.skipif(not TEST_DATABASE_URL, reason="needs PROVIDER_ADMIN_TEST_DATABASE_URL")]
INTERVAL = 2


def workers_of(master: int) -> set[int]:
    return {int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()}


def sign_in(url: str, email: str) -> requests.Session:
    session = requests.Session()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', session.get(url + "/login").text).group(1)
    answer = session.post(url + "/login", data={"email": email, "password": PASSWORD, "csrf_token": token},
                          allow_redirects=False)
    assert answer.status_code == 303, answer.text
    return session


def history() -> Counter:
    db.session.expire_all()
    return Counter(db.session.scalars(sa.select(ProviderCheck.provider_id).where(ProviderCheck.trigger == "scheduled")))


def marker_reads(kube_api, providers: dict) -> int:
    seen = Counter(kube_api.requests)
    return sum(seen[MARKER.format(namespace)] for namespace in providers.values())


def newest(column, since: datetime) -> bool:
    db.session.expire_all()
    latest = db.session.scalar(sa.select(sa.func.max(column)))
    return latest is not None and latest > since


def wait_until(condition, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.3)


def test_gunicorn_and_the_scheduler_live_through_the_database_going_away(
        tmp_path, actions, kube_api, kube_provider, proxy, application_name):
    admin = actions.user("admin", username="ada")
    providers = {}
    for i in range(4):
        kube_api.deploy_marker(f"p{i}", namespace=f"ns{i}")
        # The check's last request: a check that has read its marker waits 1.5 s for the answer.
        kube_api.slow(MARKER.format(f"ns{i}").lower(), 1.5)
        provider = kube_provider(kube_api, name=f"p{i}", namespace=f"ns{i}", status="ready",
                                 last_permissions_check_at=utcnow())
        providers[provider.id] = provider.namespace
    email = admin.email
    db.session.commit()
    env = environment(through(proxy, application_name), tmp_path, CHECK_INTERVAL=INTERVAL, CHECK_LEASE=30,
                      CHECK_POOL_SIZE=2, CHECK_TIMEOUT=2.0, CHECK_PERMISSIONS_EVERY=3600, READY_TIMEOUT=1.0)
    checks = scheduler(env)
    try:
        with gunicorn(env, tmp_path / "access.log", workers=2) as url:
            master = gunicorn_master(url)
            workers = workers_of(master)
            assert checks.stdout.readline().startswith("Checking providers")
            browser = sign_in(url, email)
            wait_until(lambda: len(history()) == len(providers))

            # Backends ended by the server: the pools replace them, no request fails.
            assert terminate(application_name) >= 2
            for _ in range(4):
                assert browser.get(url + "/manage/providers/").status_code == 200

            wait_until(lambda: marker_reads(kube_api, providers) > sum(history().values()))  # under way
            proxy.cut()
            cut_at = utcnow()
            for _ in range(4):
                page = browser.get(url + "/manage/providers/")
                assert page.status_code == 503 and MESSAGE in page.text, page.text
                assert page.headers["Retry-After"] == "5"
            fragment = browser.get(url + "/manage/providers/", headers={"HX-Request": "true"})
            assert fragment.status_code == 503 and fragment.headers["HX-Retarget"] == "#flashes"
            assert requests.get(url + "/readyz").status_code == 503
            assert requests.get(url + "/healthz").status_code == 200
            time.sleep(INTERVAL * 2)  # checks under way end meanwhile; the scheduler's writes wait
            proxy.restore()
            back_at = utcnow()

            wait_until(lambda: browser.get(url + "/manage/providers/").status_code == 200)
            assert requests.get(url + "/readyz").status_code == 200
            # The scheduler checks again and records its ticks, by itself.
            wait_until(lambda: newest(ProviderCheck.checked_at, back_at) and newest(SchedulerHeartbeat.last_tick_at,
                                                                                      back_at))
            wait_until(lambda: min(history()[i] for i in providers) >= 3)
            assert checks.poll() is None, "the scheduler is still running"
            assert workers_of(master) == workers, "no gunicorn worker died or was replaced"
            assert cut_at < back_at
    finally:
        checks.send_signal(signal.SIGINT)  # its checks under way end and their results are written
        try:
            checks.wait(30)
        except subprocess.TimeoutExpired:
            checks.kill()
    requests_seen = Counter(kube_api.requests)
    written = history()
    assert {i: written[i] for i in providers} == {i: requests_seen[MARKER.format(ns)] for i, ns in providers.items()}


def gunicorn_master(url: str) -> int:
    """The pid of the gunicorn this test started on `url`'s port (its workers are its children)."""
    bind = url.removeprefix("http://").encode()
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and bind in (proc / "cmdline").read_bytes() and \
                    int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == os.getpid():
                return int(proc.name)
        except OSError:
            continue
    raise AssertionError(f"no gunicorn on {url}")


def test_gunicorn_with_auto_migrate_starts_while_the_database_is_away(tmp_path, proxy, application_name):
    """Its workers boot (a worker that fails to boot stops gunicorn), answer 503 meanwhile,
    and migrate and serve once the database is back."""
    env = environment(through(proxy, application_name), tmp_path, AUTO_MIGRATE="true", READY_TIMEOUT=1.0)
    proxy.cut()
    answers = []

    def look_then_restore():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not answers:
            for port in listening_ports_of_children():
                try:
                    answers.append(requests.get(f"http://127.0.0.1:{port}/login", timeout=5))
                except requests.RequestException:
                    pass
            time.sleep(0.3)
        proxy.restore()

    restorer = threading.Thread(target=look_then_restore)
    restorer.start()
    try:
        with gunicorn(env, tmp_path / "access.log", workers=2) as url:  # waits for /login to answer 200
            assert requests.get(url + "/readyz").status_code == 200
    finally:
        restorer.join()
    assert answers and answers[0].status_code == 503 and MESSAGE in answers[0].text


def listening_ports_of_children() -> set[int]:
    """The TCP ports the test's child processes listen on (gunicorn's, before it is ready)."""
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True).stdout
    children = {int(p) for p in Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()}
    return {int(m.group(1)) for line in out.splitlines() if (m := re.search(r"127\.0\.0\.1:(\d+)", line))
            and {int(pid) for pid in re.findall(r"pid=(\d+)", line)} & children}
