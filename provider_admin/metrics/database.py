"""The metrics read from the database at scrape time: the same answer from every process."""
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from sqlalchemy import func, select

from ..extensions import db
from ..kube.errors import READY
from ..models import Provider, SchedulerHeartbeat, Status, utcnow
from . import tallies

STATUSES = [s.value for s in Status]


class DatabaseCollector:
    def collect(self):
        yield from _providers()
        yield from _checks()
        yield _lag()
        yield _ticks()


def _providers():
    status = GaugeMetricFamily("provider_admin_provider_status",
                               "1 for the status a provider shows now (pending, ready or error), else 0.",
                               labels=["provider", "status"])
    cordoned = GaugeMetricFamily("provider_admin_provider_cordoned", "1 while a provider is cordoned.",
                                 labels=["provider"])
    for name, current, is_cordoned in db.session.execute(
            select(Provider.name, Provider.status, Provider.cordoned).order_by(Provider.name)):
        for value in STATUSES:
            status.add_metric([name, value], 1.0 if current == value else 0.0)
        cordoned.add_metric([name], 1.0 if is_cordoned else 0.0)
    return status, cordoned


def _checks():
    checks = CounterMetricFamily("provider_admin_checks", "Health checks recorded, by result category "
                                 "(ready is a success) and what started them.", labels=["category", "trigger"])
    failures = CounterMetricFamily("provider_admin_check_failures", "Health checks that did not find the "
                                   "provider ready, by category.", labels=["category", "trigger"])
    duration = HistogramMetricFamily("provider_admin_check_duration_seconds", "How long health checks took, "
                                     "by result category.", labels=["category", "trigger"])
    for (category, trigger), (buckets, count, seconds) in sorted(tallies.read().items()):
        checks.add_metric([category, trigger], count)
        if category != READY:
            failures.add_metric([category, trigger], count)
        duration.add_metric([category, trigger], buckets, seconds)
    return checks, failures, duration


def _lag():
    """How late the most overdue check is: 0 while every provider is checked on time."""
    due = db.session.scalar(select(func.min(Provider.next_check_at)).where(Provider.next_check_at.is_not(None)))
    lag = max((utcnow() - due).total_seconds(), 0.0) if due is not None else 0.0
    return GaugeMetricFamily("provider_admin_check_lag_seconds",
                             "How long the most overdue health check has been due (0: none is late).", value=lag)


def _ticks():
    """Each scheduler process's last tick (those of the last day: older rows are cleaned up);
    `time() - max(...)` says how long none has ticked."""
    ticks = GaugeMetricFamily("provider_admin_scheduler_last_tick_timestamp_seconds",
                              "When each scheduler process last ticked (Unix time).", labels=["host", "pid", "run"])
    for host, pid, run, at in db.session.execute(
            select(SchedulerHeartbeat.host, SchedulerHeartbeat.pid, SchedulerHeartbeat.run_id,
                   SchedulerHeartbeat.last_tick_at).order_by(SchedulerHeartbeat.id)):
        ticks.add_metric([host, str(pid), run], at.timestamp())
    return ticks
