"""The app's production processes for tests: gunicorn with several workers and the
scheduler command, as subprocesses on the test database."""
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from .conftest import ENCRYPTION_KEY

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = os.path.join(os.path.dirname(sys.executable), "gunicorn")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment(database_url: str, instance: Path, **settings) -> dict:
    """What every process of one site shares; `settings` as PROVIDER_ADMIN_* variables."""
    return {**os.environ, "DATABASE_URL": database_url, "FLASK_APP": "app", "PROVIDER_ADMIN_AUTO_MIGRATE": "false",
            "PROVIDER_ADMIN_SECRET_KEY": "test-secret", "PROVIDER_ADMIN_ENCRYPTION_KEY": ENCRYPTION_KEY,
            "PROVIDER_ADMIN_INSTANCE_PATH": str(instance),
            **{f"PROVIDER_ADMIN_{name}": str(value) for name, value in settings.items()}}


@contextmanager
def gunicorn(env: dict, log: Path, workers: int = 3, config: Path | None = None):
    """The app under gunicorn's sync workers (or with `config`'s settings); yields its URL.
    The access log's lines are "worker-pid status path"."""
    port = free_port()
    process = subprocess.Popen(
        [GUNICORN, *(["--config", str(config)] if config else []), "--workers", str(workers), "--bind", f"127.0.0.1:{port}", "--access-logfile", str(log),
         "--access-logformat", "%(p)s %(s)s %(U)s", "app:create_app()"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60  # workers importing the app on a busy machine
        while True:
            try:
                urllib.request.urlopen(url + "/login", timeout=5)
                break
            except OSError:
                assert process.poll() is None, process.stderr.read().decode()
                assert time.monotonic() < deadline, "gunicorn did not answer"
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def scheduler(env: dict) -> subprocess.Popen:
    """`flask scheduler`; its first line says it started ("Checking providers every ...")."""
    return subprocess.Popen([sys.executable, "-m", "flask", "scheduler"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
