"""The production processes as the image starts them: deploy/entrypoint.sh runs migrate,
web and scheduler for real on the test database, with the settings the manifests give the
pods, and gunicorn.conf.py's settings follow the environment."""
import importlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa

from provider_admin.database import script_head

from .conftest import ENCRYPTION_KEY, TEST_DATABASE_URL, _driver
from .servers import free_port
from .test_packaging import (ENTRYPOINT, GUNICORN_CONF, KUSTOMIZATIONS, ROOT, SECRET_NAMES, build,
                             entrypoint_commands, final_stage, gunicorn_settings, image_env, last, one, settings)


@pytest.fixture(scope="module")
def base() -> list[dict]:
    """The base's objects, as `kubectl kustomize` builds them."""
    return build(KUSTOMIZATIONS["base"])

def test_gunicorn_settings_come_from_the_environment(tmp_path):
    defaults = gunicorn_settings()
    assert defaults["bind"] == "0.0.0.0:8000" and defaults["wsgi_app"] == "app:create_app()"
    assert 3 <= defaults["workers"] <= 8 and defaults["threads"] >= 1
    assert defaults["max_requests"] > 0 and defaults["max_requests_jitter"] > 0
    assert defaults["graceful_timeout"] < defaults["timeout"]
    assert defaults["forwarded_allow_ips"] == "127.0.0.1,::1"
    given = gunicorn_settings(WEB_CONCURRENCY="2", GUNICORN_THREADS="4",
                              PROVIDER_ADMIN_TRUSTED_PROXIES='["10.0.0.0/8", "192.168.1.5"]')
    assert (given["workers"], given["threads"]) == (2, 4)
    assert given["forwarded_allow_ips"] == "10.0.0.0/8,192.168.1.5"
    spaced = gunicorn_settings(PROVIDER_ADMIN_TRUSTED_PROXIES="127.0.0.1, 10.0.8.0/24")
    assert spaced["forwarded_allow_ips"] == "127.0.0.1,10.0.8.0/24"
    checked = subprocess.run([os.path.join(os.path.dirname(sys.executable), "gunicorn"), "--config",
                              str(GUNICORN_CONF), "--check-config"], cwd=ROOT, capture_output=True, text=True,
                             timeout=120, env={**os.environ, "PROVIDER_ADMIN_INSTANCE_PATH": str(tmp_path),
                                                  "PROVIDER_ADMIN_AUTO_MIGRATE": "false"})
    assert checked.returncode == 0, checked.stderr


def test_a_dead_workers_live_gauges_leave_the_metrics_folder(tmp_path):
    """gunicorn calls child_exit in the master when a worker exits."""
    folder = tmp_path / "metrics"
    folder.mkdir()
    # A real process writes a live gauge there, as a worker's would be.
    script = ("from prometheus_client import Gauge; "
              "Gauge('in_flight', 'x', multiprocess_mode='livesum').set(3)")
    worker = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)},
                            timeout=60, check=True)
    del worker
    files = sorted(p.name for p in folder.iterdir())
    assert len(files) == 1 and files[0].startswith("gauge_livesum_")
    pid = int(files[0].removeprefix("gauge_livesum_").removesuffix(".db"))

    class Worker:
        pass

    dead = Worker()
    dead.pid = pid
    child_exit = gunicorn_settings(PROMETHEUS_MULTIPROC_DIR=str(folder))["child_exit"]
    # prometheus_client chooses its multiprocess values when first imported: not under this
    # folder, or the app of the tests after this one would count into it once it is gone.
    importlib.import_module("prometheus_client")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    try:
        child_exit(None, dead)
    finally:
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
    assert list(folder.iterdir()) == []


# --- The entrypoint, for real ----------------------------------------------------------------

def manifest_environment(base: list[dict], database_url: str, folder: Path, **extra) -> dict:
    """What a pod's environment holds: the image's ENV, the ConfigMap, the Secret (test
    values here), with the image's folders moved under `folder`."""
    env = {**os.environ, **image_env(), **settings(base)}
    env["PATH"] = f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"
    env.update({"DATABASE_URL": database_url, "PROVIDER_ADMIN_SECRET_KEY": "test-secret",
                "PROVIDER_ADMIN_ENCRYPTION_KEY": ENCRYPTION_KEY,
                "PROVIDER_ADMIN_INSTANCE_PATH": str(folder / "instance"),
                "PROMETHEUS_MULTIPROC_DIR": str(folder / "metrics")})
    for name in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "PROVIDER_ADMIN_TEST_DATABASE_URL"):
        env.pop(name, None)
    env.update(extra)
    assert set(env) >= SECRET_NAMES
    return env


def entrypoint(env: dict, *args: str, **popen) -> subprocess.Popen:
    """deploy/entrypoint.sh run by POSIX sh from another directory, as the image runs it."""
    return subprocess.Popen(["sh", str(ENTRYPOINT), *args], cwd="/", env=env, **popen)


@pytest.fixture
def empty_database(tmp_path):
    """The test database with nothing in it: PostgreSQL's schema dropped (the entrypoint's
    migrate puts it back at head for the tests after), or a new SQLite file."""
    if not TEST_DATABASE_URL:
        return f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    engine = sa.create_engine(_driver(TEST_DATABASE_URL))
    with engine.begin() as connection:
        connection.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    return TEST_DATABASE_URL


def query(database_url: str, statement: str) -> list:
    engine = sa.create_engine(_driver(database_url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text(statement)).all()
    finally:
        engine.dispose()


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def command_line(pid: int) -> list[str]:
    return (Path("/proc") / str(pid) / "cmdline").read_bytes().decode().split("\0")


def wait_for(predicate, seconds: float, what: str, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value:
            return value
        if process is not None:
            assert process.poll() is None, f"exited ({process.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} within {seconds} s"
        time.sleep(0.3)


def get(url: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


def stop(process: subprocess.Popen, within: float) -> int:
    """SIGTERM, as Kubernetes and systemd send it; the exit status."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(within)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"still running {within} s after SIGTERM")


def healthcheck(port: int) -> int:
    """The exit status of the Containerfile's HEALTHCHECK command against `port`."""
    command = json.loads(last(final_stage(), "HEALTHCHECK").split(" CMD ", 1)[1])
    command = [part.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for part in command]
    return subprocess.run([sys.executable, *command[1:]], capture_output=True, timeout=30).returncode


def test_migrate_waits_for_the_database_a_bounded_time_and_says_so(base, tmp_path):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens once the socket is closed
    url = f"postgresql://provider_admin:hunter2@127.0.0.1:{port}/provider_admin"
    env = manifest_environment(base, url, tmp_path, DATABASE_WAIT_SECONDS="2")
    started = time.monotonic()
    process = entrypoint(env, "migrate", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = process.communicate(timeout=90)
    assert process.returncode == 1
    assert time.monotonic() - started >= 2
    assert f"The database at postgresql+psycopg://provider_admin:***@127.0.0.1:{port}/provider_admin " \
           "did not answer within 2 s (DATABASE_WAIT_SECONDS)" in err, err
    assert "hunter2" not in out + err and "Traceback" not in err


def test_the_entrypoint_migrates_serves_and_schedules_with_the_manifests_settings(base, empty_database, tmp_path):
    env = manifest_environment(base, empty_database, tmp_path)
    migrate = entrypoint(env, "migrate", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = migrate.communicate(timeout=300)[0]
    assert migrate.returncode == 0, output
    assert query(empty_database, "SELECT version_num FROM alembic_version")[0][0] == script_head()

    # The web: gunicorn with the production settings and two workers; a stale metrics file
    # from a previous start is gone.
    (tmp_path / "metrics").mkdir(exist_ok=True)
    (tmp_path / "metrics" / "counter_1.db").write_bytes(b"stale")
    port = free_port()
    log = (tmp_path / "web.log").open("w")
    web = entrypoint({**env, "WEB_CONCURRENCY": "2"}, "web", "--bind", f"127.0.0.1:{port}",
                     stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: get(url + "/healthz")[0] == 200, 120, "answer on /healthz", web)
        status, body = get(url + "/readyz")
        assert status == 200 and json.loads(body)["status"] == "ready", body
        assert "gunicorn" in " ".join(command_line(web.pid)), "exec: gunicorn is the process itself"
        wait_for(lambda: len(children(web.pid)) == 2, 60, "two workers", web)
        assert not (tmp_path / "metrics" / "counter_1.db").exists()
        assert healthcheck(port) == 0  # the image's HEALTHCHECK, on this port
        assert stop(web, 60) == 0
        assert healthcheck(port) != 0
    finally:
        if web.poll() is None:
            web.kill()
        log.close()
    access = (tmp_path / "web.log").read_text()
    assert '"GET /readyz HTTP/1.1" 200' in access, access

    # The scheduler: it ticks, its heartbeat row names this very process, and SIGTERM stops it.
    scheduler = entrypoint(env, "scheduler", stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = scheduler.stdout.readline()
        assert line.startswith("Checking providers every 30 s"), line  # the ConfigMap's interval
        assert "flask" in " ".join(command_line(scheduler.pid))
        rows = wait_for(lambda: query(empty_database, "SELECT pid, last_tick_at FROM scheduler_heartbeats"),
                        60, "heartbeat", scheduler)
        assert [row.pid for row in rows] == [scheduler.pid]
        # The scheduler's own SIGTERM handling may exit 0; without it Python's default ends it.
        assert stop(scheduler, 45) in (0, -signal.SIGTERM)
    finally:
        if scheduler.poll() is None:
            scheduler.kill()
            scheduler.wait()


# --- A release: the new pods, the migration Job and the old pods, for real --------------------

def previous_release(tmp_path: Path) -> Path:
    """The release before this one as its image holds it (what the Containerfile copies): this
    tree without its newest migration, so its code's head is the revision before."""
    root = tmp_path / "previous"
    for word, args in final_stage():
        if word == "COPY" and not args.startswith("--from"):
            for source in shlex.split(args)[:-1]:
                source = source.rstrip("/")
                if (ROOT / source).is_dir():
                    shutil.copytree(ROOT / source, root / source, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    (root / source).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(ROOT / source, root / source)
    newest = [path for path in (root / "migrations" / "versions").glob("*.py")
              if re.search(rf"^revision = ['\"]{script_head()}['\"]$", path.read_text(), re.M)]
    assert len(newest) == 1
    newest[0].unlink()
    return root


class Prober(threading.Thread):
    """The kubelet's readiness probe of one pod as the manifest sets it: every periodSeconds
    from a phase of its own, with its timeout; the pod is in the Service's endpoints after
    successThreshold answers of 200 in a row and out after failureThreshold others."""

    def __init__(self, url: str, probe: dict, ready: bool, phase: float):
        super().__init__(daemon=True)
        self.url, self.probe, self.ready, self.phase = url, probe, ready, phase
        self.changes: list[tuple[float, bool]] = []  # (time.monotonic(), in the endpoints)
        self.stopping = threading.Event()

    def run(self):
        successes = failures = 0
        due = time.monotonic() + self.phase
        while not self.stopping.wait(max(0.0, due - time.monotonic())):
            due += self.probe["periodSeconds"]
            ok = get(self.url, timeout=self.probe["timeoutSeconds"])[0] == 200
            successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
            if not self.ready and successes >= self.probe.get("successThreshold", 1):
                self.ready = True
                self.changes.append((time.monotonic(), True))
            elif self.ready and failures >= self.probe.get("failureThreshold", 3):
                self.ready = False
                self.changes.append((time.monotonic(), False))


def readyz(url: str) -> str:
    """What /readyz says of the migrations ("ok", "behind", "ahead", ...), or why it said nothing."""
    status, body = get(url + "/readyz")
    try:
        return json.loads(body)["checks"]["migrations"]
    except (ValueError, KeyError):
        return f"no answer ({status})"


def test_a_release_turns_its_pods_ready_as_the_old_ones_leave(base, empty_database, tmp_path):
    """README "Production", each release: the previous release's web serves; the new release's
    web starts beside it and is not ready ("behind"); its migration runs in a process of its
    own; at its end the new web answers ready and the old one "ahead". Probed as the manifest
    probes them, the new pod joins the endpoints before the old one leaves them."""
    web_spec = one(base, "Deployment", "provider-admin-web")["spec"]
    probe = web_spec["template"]["spec"]["containers"][0]["readinessProbe"]
    previous = previous_release(tmp_path)
    env = manifest_environment(base, empty_database, tmp_path / "new", WEB_CONCURRENCY="1")
    old_env = manifest_environment(base, empty_database, tmp_path / "old", WEB_CONCURRENCY="1")
    migrated = subprocess.run(["sh", str(previous / "deploy" / "entrypoint.sh"), "migrate"], cwd="/", env=old_env,
                              capture_output=True, text=True, timeout=300)
    assert migrated.returncode == 0, migrated.stderr
    assert query(empty_database, "SELECT version_num FROM alembic_version")[0][0] != script_head()

    webs, logs, probers = {}, [], []
    try:
        for name, entry, environ in (("old", previous / "deploy" / "entrypoint.sh", old_env),
                                     ("new", ENTRYPOINT, env)):
            port = free_port()
            logs.append((tmp_path / f"{name}.log").open("w"))
            process = subprocess.Popen(["sh", str(entry), "web", "--bind", f"127.0.0.1:{port}"], cwd="/",
                                       env=environ, stdout=logs[-1], stderr=subprocess.STDOUT)
            webs[name] = (process, f"http://127.0.0.1:{port}")
        for name, (process, url) in webs.items():
            wait_for(lambda: get(url + "/healthz")[0] == 200, 120, f"the {name} web on /healthz", process)
        old_url, new_url = webs["old"][1], webs["new"][1]
        assert (readyz(old_url), readyz(new_url)) == ("ok", "behind")

        # Both pods probed as the kubelet would, from phases of their own; and both asked
        # /readyz as often as can be, to time the app's own answer.
        period = probe["periodSeconds"]
        probers = [Prober(old_url + "/readyz", probe, True, period * 0.9),
                   Prober(new_url + "/readyz", probe, False, period * 0.1)]
        for prober in probers:
            prober.start()
        answers: list[tuple[float, str, str]] = []
        polling = threading.Event()

        def poll():
            while not polling.is_set():
                answers.append((time.monotonic(), readyz(old_url), readyz(new_url)))
                time.sleep(0.1)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        time.sleep(period)  # the endpoints settle: the old pod in, the new one out

        started = time.monotonic()
        migration = entrypoint(env, "migrate", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        output = migration.communicate(timeout=300)[0]
        ended = time.monotonic()
        assert migration.returncode == 0, output
        old_prober, new_prober = probers
        bound = ended + 3 * probe["failureThreshold"] * period  # generous: a loaded machine probes late
        wait_for(lambda: new_prober.ready and not old_prober.ready, bound - time.monotonic(),
                 "the new pod in the endpoints and the old one out")
        polling.set()
        poller.join(30)
    finally:
        for prober in probers:
            prober.stopping.set()
        for process, _ in webs.values():
            process.send_signal(signal.SIGTERM)
        for process, _ in webs.values():
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs:
            log.close()

    # The app's answers: the old web "ok" then "ahead", the new one "behind" then "ok", each
    # turning once, while the migration ran or at its end.
    old_seen = [old for _, old, _ in answers]
    new_seen = [new for _, _, new in answers]
    assert dedupe(old_seen) == ["ok", "ahead"], dedupe(old_seen)
    assert dedupe(new_seen) == ["behind", "ok"], dedupe(new_seen)
    old_turned = next(at for at, old, _ in answers if old == "ahead")
    new_turned = next(at for at, _, new in answers if new == "ok")
    assert started <= min(old_turned, new_turned) and max(old_turned, new_turned) <= ended + 5
    if TEST_DATABASE_URL:  # PostgreSQL's migration commits its DDL and its revision at once
        assert all("ok" in (old, new) for _, old, new in answers)

    # The endpoints, as the probes made them: the old pod leaves only after the new one joined.
    (joined, _), = new_prober.changes
    (left, _), = old_prober.changes
    assert joined <= left
    assert joined - ended <= period + 3 * probe["timeoutSeconds"]
    print(f"\nrelease: migration {ended - started:.2f} s; /readyz turned {new_turned - ended:+.2f} s (new, ok) "
          f"and {old_turned - ended:+.2f} s (old, ahead) from its end; probed every {period} s, "
          f"the new pod joined at {joined - ended:+.2f} s and the old one left at {left - ended:+.2f} s; "
          f"{len(answers)} rounds of /readyz")


def test_a_releases_scheduler_starts_once_its_migrations_are_applied(base, empty_database, tmp_path):
    """On the schema before, the scheduler waits (a bounded time, then says why it gives up)
    instead of running this code's queries on tables that do not exist yet; the migration's
    end starts it."""
    previous = previous_release(tmp_path)
    env = manifest_environment(base, empty_database, tmp_path)
    migrated = subprocess.run(["sh", str(previous / "deploy" / "entrypoint.sh"), "migrate"], cwd="/", env=env,
                              capture_output=True, text=True, timeout=300)
    assert migrated.returncode == 0, migrated.stderr
    before = query(empty_database, "SELECT version_num FROM alembic_version")[0][0]
    assert before != script_head()

    gave_up = subprocess.run(["sh", str(ENTRYPOINT), "scheduler"], cwd="/", env={**env, "DATABASE_WAIT_SECONDS": "1"},
                             capture_output=True, text=True, timeout=120)
    assert gave_up.returncode == 1, gave_up.stderr
    assert f"was not migrated to {script_head()} within 1 s (DATABASE_WAIT_SECONDS): it is at {before}" \
        in gave_up.stderr, gave_up.stderr
    assert "Traceback" not in gave_up.stderr and not gave_up.stdout

    scheduler = entrypoint(env, "scheduler", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        waiting = scheduler.stderr.readline()
        assert waiting.startswith("Waiting for the migrations of the database at ") and \
            f"(at {before}, this code at {script_head()})" in waiting, waiting
        assert query(empty_database, "SELECT pid FROM scheduler_heartbeats") == []
        migration = entrypoint(env, "migrate", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        output = migration.communicate(timeout=300)[0]
        assert migration.returncode == 0, output
        line = scheduler.stdout.readline()
        assert line.startswith("Checking providers every"), line
        rows = wait_for(lambda: query(empty_database, "SELECT pid FROM scheduler_heartbeats"), 60, "heartbeat", scheduler)
        assert [row.pid for row in rows] == [scheduler.pid]
        assert stop(scheduler, 45) in (0, -signal.SIGTERM)
        assert "Traceback" not in scheduler.stderr.read()
    finally:
        if scheduler.poll() is None:
            scheduler.kill()
            scheduler.wait()


def dedupe(values: list[str]) -> list[str]:
    """The values with repeats in a row dropped: the transitions."""
    return [v for i, v in enumerate(values) if i == 0 or values[i - 1] != v]


def test_any_other_command_runs_as_given(base, tmp_path):
    env = manifest_environment(base, f"sqlite:///{tmp_path / 'x.sqlite'}", tmp_path)
    done = subprocess.run(["sh", str(ENTRYPOINT), "python", "-c", "import os; print(os.getcwd())"],
                          cwd="/", env=env, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, str(ROOT))  # the app's folder, as WORKDIR /app


def test_the_entrypoint_is_posix_sh():
    text = ENTRYPOINT.read_text()
    assert text.startswith("#!/bin/sh\n") and "\nset -eu\n" in text
    dash = shutil.which("dash")
    if dash:  # Debian's /bin/sh: parses only POSIX
        assert subprocess.run([dash, "-n", str(ENTRYPOINT)], capture_output=True).returncode == 0
    # Every command is exec'd, so the signals reach the process and not a shell.
    for command in entrypoint_commands():
        arm = re.search(rf"^\s+{command}\)\n(.*?);;", text, re.M | re.S).group(1)
        assert re.search(r"^\s+exec ", arm, re.M), command
