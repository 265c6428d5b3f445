"""Helpers shared by the benchmarks: a migrated app on a fresh SQLite file, the Kubernetes
API farm process, free ports, and the PASS/FAIL lines."""
from __future__ import annotations

import json
import logging
import math
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from provider_admin.config import Defaults  # noqa: E402

PYTHON = sys.executable
TOKEN = "test-token"  # what tests/kube.py's emulator expects (it does not check it)


def fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def workdir(prefix: str) -> str:
    """A temporary folder for the database and the app's instance folder."""
    path = tempfile.mkdtemp(prefix=f"provider-admin-{prefix}-")
    os.environ["PROVIDER_ADMIN_INSTANCE_PATH"] = os.path.join(path, "instance")
    return path


def make_app(db_url: str, **config):
    """The real app on `db_url` (migrated on first use); no scheduler of its own."""
    from provider_admin import create_app

    settings = {
        "SQLALCHEMY_DATABASE_URI": db_url,
        "AUTO_MIGRATE": True,
        "RUN_SCHEDULER": False,
        "SECRET_KEY": config.pop("SECRET_KEY", "bench-secret"),
        "ENCRYPTION_KEY": config.pop("ENCRYPTION_KEY"),
    }
    settings.update(config)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return create_app(settings)


class Database:
    """A fresh database for one run: a SQLite file in `folder` (default), or, given a
    PostgreSQL server URL, a new database on that server, dropped at the end."""

    def __init__(self, folder: str, server_url: str | None = None):
        self.folder, self.server_url = folder, server_url
        self.url = ""
        self._name = None

    def __enter__(self) -> "Database":
        if not self.server_url:
            self.url = f"sqlite:///{os.path.join(self.folder, 'bench.sqlite')}"
            return self
        import uuid

        import sqlalchemy as sa

        from provider_admin.config import normalize_database_url

        server = sa.engine.make_url(normalize_database_url(self.server_url))
        self._admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
        self._name = f"provider_admin_bench_{uuid.uuid4().hex[:8]}"
        with self._admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{self._name}"'))
        self.url = server.set(database=self._name).render_as_string(hide_password=False)
        return self

    @property
    def kind(self) -> str:
        return "PostgreSQL" if self._name else "SQLite"

    def use_wal(self, app) -> None:
        """SQLite only: switch the file to write-ahead logging (stored in the file)."""
        from provider_admin.extensions import db

        with app.app_context():
            with db.engine.connect() as conn:
                mode = conn.exec_driver_sql("PRAGMA journal_mode=WAL").scalar()
            db.engine.dispose()
        if mode != "wal":
            raise RuntimeError(f"SQLite refused WAL mode ({mode})")

    def __exit__(self, *exc) -> None:
        if self._name:
            import sqlalchemy as sa

            with self._admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self._name}" WITH (FORCE)'))
            self._admin.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class KubeFarm:
    """bench/kube_farm.py in a child process: kmock API servers and a black hole."""

    def __init__(self, servers: int, markers: list[tuple[int, str, str]], tls: bool = False):
        self.spec = {"servers": servers, "markers": [list(m) for m in markers], "tls": tls}
        self.cas: list[str | None] = []
        self.proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self.urls: list[str] = []
        self.black_hole = ""

    def __enter__(self) -> KubeFarm:
        # Its stderr goes to a file, shown only if it fails to start: aiohttp complains
        # about kmock's unclosed client sessions at exit, which is noise here.
        self.log = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(
            [PYTHON, os.path.join(ROOT, "bench", "kube_farm.py")], cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
            bufsize=1)
        self.proc.stdin.write(json.dumps(self.spec) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            self.__exit__()
            self.log.seek(0)
            raise RuntimeError("the Kubernetes API farm did not start:\n" + self.log.read()[-3000:])
        info = json.loads(line)
        self.urls, self.black_hole, self.cas = info["urls"], info["black_hole"], info["cas"]
        return self

    def _ask(self, command: str) -> dict:
        with self._lock:  # one question and its answer at a time, whichever thread asks
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
            return json.loads(self.proc.stdout.readline())

    def cpu(self) -> float:
        """CPU seconds the farm process has used so far."""
        return self._ask("cpu")["cpu"]

    def deploy_marker(self, server: int, owner: str, namespace: str) -> None:
        """Write the marker of provider `owner` in `namespace` on that server."""
        self._ask(json.dumps({"deploy": [server, owner, namespace]}))

    def __exit__(self, *exc) -> None:
        if self.proc is None:
            return
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write("stop\n")
                self.proc.stdin.close()
            self.proc.wait(15)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(5)
        finally:
            self.proc = None
            self.log.close()


def request_loop(threads: int, rounds: int, urls_for, headers: dict | None = None,
                 limit_s: float = 60.0) -> dict:
    """`threads` keep-alive clients (urllib3), each doing rounds // threads rounds of the GETs
    `urls_for(thread, round)` as fast as they can: what the servers serve with nothing else
    in the way. Returns rounds done, seconds, rounds/s and the client's CPU (cores)."""
    from concurrent.futures import ThreadPoolExecutor

    import urllib3

    manager = urllib3.PoolManager(num_pools=256, maxsize=threads, retries=False, timeout=10.0,
                                  headers=headers)
    per_thread = max(1, rounds // threads)
    deadline = time.monotonic() + limit_s
    errors = []

    def worker(index: int) -> int:
        done = 0
        for k in range(per_thread):
            if time.monotonic() > deadline:
                break
            for url in urls_for(index, k):
                response = manager.request("GET", url)
                if response.status != 200:
                    errors.append((url, response.status))
            done += 1
        return done

    cpu0, started = time.process_time(), time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        done = sum(pool.map(worker, range(threads)))
    elapsed = time.monotonic() - started
    manager.clear()
    if errors:
        raise RuntimeError(f"the API servers answered {errors[:5]}")
    return {"rounds": done, "seconds": elapsed, "rate": done / elapsed,
            "client_cpu": (time.process_time() - cpu0) / elapsed}


def revision() -> str:
    """The commit measured, and whether the app's files had uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "provider_admin",
                                "templates", "migrations"], cwd=ROOT, text=True,
                               capture_output=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head or 'unknown'}{' + uncommitted changes to the app' if dirty else ''}"


def verdict(name: str, ratio: float, target: float, *, at_most: bool = False) -> bool:
    ok = ratio <= target if at_most else ratio >= target
    sign = "<=" if at_most else ">="
    print(f"  {'PASS' if ok else 'FAIL'}  {name}: {ratio:.3f} (target {sign} {target:g})")
    return ok


def ceil_div(a: int, b: int) -> int:
    return math.ceil(a / b) if b else 0


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


# The app's own processes ----------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pids: list[int]) -> float:
    """CPU seconds used so far by these processes (from /proc; gone ones count 0)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except OSError:
            pass
    return total / CLOCK_TICKS


def site_environment(db_url: str, secret_key: str, encryption_key: str, **settings) -> dict:
    """The environment every process of one site shares; `settings` as PROVIDER_ADMIN_*."""
    return {**os.environ, "DATABASE_URL": db_url, "FLASK_APP": "app",
            "PROVIDER_ADMIN_AUTO_MIGRATE": "false", "PROVIDER_ADMIN_SECRET_KEY": secret_key,
            "PROVIDER_ADMIN_ENCRYPTION_KEY": encryption_key,
            "PROVIDER_ADMIN_INSTANCE_PATH": os.environ["PROVIDER_ADMIN_INSTANCE_PATH"],
            **{f"PROVIDER_ADMIN_{name}": str(value) for name, value in settings.items()}}


class SchedulerProcess:
    """`flask scheduler`, as production runs it; its output goes to `log_path`."""

    def __init__(self, env: dict, log_path: str):
        self.env, self.log_path = env, log_path
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([PYTHON, "-m", "flask", "scheduler"], cwd=ROOT, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> float:
        return process_cpu([self.proc.pid])

    def wait_started(self, timeout: float = 60.0) -> None:
        """Until it prints its first line ("Checking providers every ...")."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the scheduler exited with {self.proc.returncode}:\n"
                                   + self.tail())
            with open(self.log_path) as f:
                if "Checking providers" in f.read():
                    return
            time.sleep(0.1)
        raise RuntimeError("the scheduler did not start:\n" + self.tail())

    def tail(self, chars: int = 3000) -> str:
        with open(self.log_path) as f:
            return f.read()[-chars:]

    def kill(self) -> None:
        """SIGKILL: no chance to hand anything back."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def stop(self, grace: float = 30.0) -> None:
        """Ctrl+C (it finishes its checks and writes their results), then SIGKILL after `grace`."""
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


def add_site_options(p, *, interval: float, timeout: float, lease: float) -> None:
    """The options of a bench that runs the app's own processes on PostgreSQL."""
    p.add_argument("--schedulers", type=int, default=2, help="`flask scheduler` processes")
    p.add_argument("--interval", type=float, default=interval, help="CHECK_INTERVAL")
    p.add_argument("--timeout", type=float, default=timeout, help="CHECK_TIMEOUT")
    p.add_argument("--lease", type=float, default=lease, help="CHECK_LEASE")
    p.add_argument("--pool", type=int, default=Defaults.CHECK_POOL_SIZE, help="CHECK_POOL_SIZE")
    p.add_argument("--database-url", metavar="URL",
                   default="postgresql://postgres@127.0.0.1:5432/postgres",
                   help="the PostgreSQL server to create the database on (dropped at the end)")


def site_options_refused(args) -> str | None:
    if args.schedulers < 1 or args.pool < 1 or args.interval <= 0 or args.timeout <= 0:
        return "need schedulers >= 1, pool >= 1, interval > 0 and timeout > 0"
    if not args.database_url.startswith(("postgres://", "postgresql")):
        return "--database-url must be a PostgreSQL server: several schedulers need one"
    return None


def run_in_workdir(prefix: str, run, args) -> int:
    """`run(args, folder)` with a temporary folder that is removed afterwards."""
    import shutil

    folder = workdir(prefix)
    try:
        return run(args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def dispose(app) -> None:
    """Close the app's database connections (before its database is dropped)."""
    from provider_admin.extensions import db

    with app.app_context():
        db.engine.dispose()


def start_schedulers(stack, env: dict, count: int, folder: str) -> list[SchedulerProcess]:
    """`count` schedulers, started and stopped with `stack` (an ExitStack)."""
    schedulers = []
    for i in range(count):
        scheduler = SchedulerProcess(env, os.path.join(folder, f"scheduler-{i}.log"))
        stack.callback(scheduler.stop)
        schedulers.append(scheduler)
    for scheduler in schedulers:
        scheduler.wait_started()
    return schedulers


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"
