"""gunicorn's production settings, from the environment: `gunicorn -c deploy/gunicorn.conf.py`
(what `deploy/entrypoint.sh web` runs). Arguments on the command line override them.

It lives here, not beside app.py, because gunicorn reads a ./gunicorn.conf.py on its own:
any gunicorn started from the repository's root would then listen on all interfaces."""
import math
import os
import re

wsgi_app = "app:create_app()"
PORT = 8000


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def cpus() -> int:
    """The CPUs this process may use: its affinity, capped by a cgroup v2 quota (a
    container's CPU limit, which os.cpu_count() does not see)."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max") as limit:
            quota, period = limit.read().split()[:2]
        if quota != "max":
            count = min(count, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return max(count, 1)


def proxies(setting: str) -> str:
    """PROVIDER_ADMIN_TRUSTED_PROXIES (addresses or networks, separated by commas or
    spaces, or a JSON list) as gunicorn's comma-separated list."""
    return ",".join(re.findall(r"[^\s,\[\]\"']+", setting))


bind = f"0.0.0.0:{PORT}"
# Each worker holds its own database connections: the cap keeps a pod on a large node from
# starting dozens (WEB_CONCURRENCY sets the number outright).
workers = _int("WEB_CONCURRENCY", min(2 * cpus() + 1, 8))
threads = _int("GUNICORN_THREADS", 2)
timeout = _int("GUNICORN_TIMEOUT", 60)  # longer than a Deploy or a Check now against a slow cluster
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 20)  # below Kubernetes' 30 s grace period
keepalive = _int("GUNICORN_KEEPALIVE", 5)
# Workers are replaced now and then, not all at once, so a slow leak never grows for long.
max_requests = _int("GUNICORN_MAX_REQUESTS", 1000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 100)
# The proxies trusted with the sign-in header are also trusted with X-Forwarded-Proto.
forwarded_allow_ips = (os.environ.get("FORWARDED_ALLOW_IPS")
                       or proxies(os.environ.get("PROVIDER_ADMIN_TRUSTED_PROXIES", ""))
                       or "127.0.0.1,::1")
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s "%({x-forwarded-for}i)s" %(t)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'
# The workers' heartbeat files: on a memory file system, never on a slow or read-only disk.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
control_socket_disable = True  # its default place is under $HOME, read-only in a container


def child_exit(server, worker):
    """A worker that exits leaves its live gauges behind in PROMETHEUS_MULTIPROC_DIR:
    drop them, or /metrics would keep summing a dead process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
