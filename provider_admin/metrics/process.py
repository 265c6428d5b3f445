"""Metrics counted inside a web process: request durations by route, workspace builds by
outcome. With PROMETHEUS_MULTIPROC_DIR set (gunicorn), prometheus-client keeps them in files
there, one per process, and a scrape of any worker sums them (its multiprocess mode)."""
import os
import time

from flask import Flask, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.multiprocess import MultiProcessCollector

disable_created_metrics()  # no *_created series: the same names with and without gunicorn's multiprocess mode
LOCAL = CollectorRegistry()
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

REQUEST_DURATION = Histogram(
    "provider_admin_http_request_duration_seconds", "Time to answer an HTTP request, by route.",
    ["route", "method", "status"], registry=LOCAL,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
BUILDS = Counter(
    "provider_admin_workspace_builds", "Workspace builds, rebuilds and teardowns that ended, by outcome.",
    ["action", "outcome"], registry=LOCAL)


def collectors(registry: CollectorRegistry) -> None:
    """Add this process's metrics to a scrape; under gunicorn, every worker's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry.register(_Local())


class _Local:
    def collect(self):
        return LOCAL.collect()


def build_ended(action: str, succeeded: bool) -> None:
    BUILDS.labels(action, "succeeded" if succeeded else "failed").inc()


def init_app(app: Flask) -> None:
    # First of all: an earlier hook that answers (the setup redirect, a refused body) stops the rest.
    app.before_request_funcs.setdefault(None, []).insert(0, _start)
    app.after_request(_observe)
    app.teardown_request(_failed)


def _start() -> None:
    g._metrics_started = time.perf_counter()


def _observe(response):
    _record(response.status_code)
    return response


def _failed(error) -> None:
    if error is not None:
        _record(500)


def _record(status: int) -> None:
    started = g.pop("_metrics_started", None)
    if started is None:  # recorded already, or the request never started here
        return
    route = request.url_rule.rule if request.url_rule is not None else "(no route)"
    method = request.method if request.method in METHODS else "other"
    REQUEST_DURATION.labels(route, method, str(status)).observe(time.perf_counter() - started)
