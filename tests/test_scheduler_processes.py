"""Two scheduler processes on PostgreSQL share the checks: each provider once per interval,
and a killed process loses no provider (its claims expire)."""
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
import sqlalchemy as sa

from provider_admin.extensions import db
from provider_admin.models import ProviderCheck, utcnow
from tests.conftest import ENCRYPTION_KEY, TEST_DATABASE_URL

# These tests read and change the database directly, in the app's context.
pytestmark = [pytest.mark.usefixtures("app_context"),
              pytest.mark.skipif(not TEST_DATABASE_URL, reason="needs PROVIDER_ADMIN_TEST_DATABASE_URL")]
ROOT = Path(__file__).resolve().parent.parent
INTERVAL, LEASE = 5.0, 4.0


def start_scheduler(tmp_path, name):
    env = {**os.environ, "DATABASE_URL": TEST_DATABASE_URL, "FLASK_APP": "app",
           "PROVIDER_ADMIN_INSTANCE_PATH": str(tmp_path / name),
           "PROVIDER_ADMIN_SECRET_KEY": "test-secret", "PROVIDER_ADMIN_ENCRYPTION_KEY": ENCRYPTION_KEY,
           "PROVIDER_ADMIN_AUTO_MIGRATE": "false", "PROVIDER_ADMIN_CHECK_INTERVAL": str(INTERVAL),
           "PROVIDER_ADMIN_CHECK_LEASE": str(LEASE), "PROVIDER_ADMIN_CHECK_POOL_SIZE": "2",
           "PROVIDER_ADMIN_CHECK_TIMEOUT": "1.0", "PROVIDER_ADMIN_CHECK_PERMISSIONS_EVERY": "3600"}
    return subprocess.Popen([sys.executable, "-m", "flask", "scheduler"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def wait_ready(*processes):
    """Both processes have started (imports take seconds on a busy machine)."""
    for process in processes:
        line = process.stdout.readline()  # "Checking providers every ..."
        assert line.startswith("Checking providers"), line


def checks_by_provider():
    db.session.expire_all()
    rows = db.session.execute(sa.select(ProviderCheck.provider_id, ProviderCheck.checked_at,
                                        ProviderCheck.worker)
                              .where(ProviderCheck.trigger == "scheduled")
                              .order_by(ProviderCheck.checked_at)).all()
    result = defaultdict(list)
    for provider_id, at, worker in rows:
        result[provider_id].append((at, worker))
    return result


def stop(*processes):
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    for process in processes:
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def fifty(app, kube_api, kube_provider):
    # A cluster answers in about 300 ms, as a distant one does. With 2 threads a process
    # needs 7.5 s for the 50 providers, more than the 5 s interval: one process alone would
    # fall behind, two keep up only by sharing. (A process takes what falls due as soon as
    # it has a free thread, so an idle second process is a standby, not a half share.)
    kube_api.slow("get /version", 0.3)
    kube_api.slow("get /version/", 0.3)
    providers = []
    for i in range(50):
        kube_api.deploy_marker(f"p{i:02}", namespace=f"ns{i:02}")
        # Ready and recently verified: the steady state, where checks are routine ones.
        providers.append(kube_provider(kube_api, name=f"p{i:02}", namespace=f"ns{i:02}",
                                       status="ready", last_permissions_check_at=utcnow()))
    return providers


def test_two_schedulers_check_each_provider_once_per_interval(tmp_path, fifty):
    a, b = start_scheduler(tmp_path, "a"), start_scheduler(tmp_path, "b")
    try:
        wait_ready(a, b)
        time.sleep(INTERVAL * 4 + 2)
    finally:
        stop(a, b)
    checks = checks_by_provider()
    assert set(checks) == {p.id for p in fifty}
    workers = {w for rows in checks.values() for _, w in rows}
    assert len(workers) == 2, "both processes took part"
    for provider_id, rows in checks.items():
        assert len(rows) >= 3, (provider_id, rows)
        gaps = [(b_at - a_at).total_seconds() for (a_at, _), (b_at, _) in zip(rows, rows[1:])]
        # Never twice in one interval: a second check only comes an interval later.
        assert min(gaps) > INTERVAL * 0.75, (provider_id, gaps)


def test_a_killed_scheduler_loses_no_provider(tmp_path, fifty):
    a, b = start_scheduler(tmp_path, "a"), start_scheduler(tmp_path, "b")
    try:
        wait_ready(a, b)
        deadline = time.monotonic() + 30
        while not checks_by_provider() and time.monotonic() < deadline:
            time.sleep(0.1)
        a.kill()  # mid-sweep, without any chance to release its claims
        killed_at = time.time()
        time.sleep(LEASE + INTERVAL * 2 + 2)
    finally:
        stop(a, b)
    checks = checks_by_provider()
    for provider in fifty:
        latest = checks[provider.id][-1][0].timestamp()
        assert latest > killed_at, f"{provider.name} was not checked after the kill"
