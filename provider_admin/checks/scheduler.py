"""APScheduler wiring: in the web process under `flask run`, or its own process.

Stopping (SIGTERM from systemd or Kubernetes, SIGINT from Ctrl+C, or the end of the process
that runs it in-process) claims nothing more, gives the checks and the notification under way
CHECK_SHUTDOWN_GRACE seconds, writes the results it has and hands back every claim it still
holds, so that another scheduler takes those providers at once instead of after the lease.
"""
import atexit
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass

import click
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED, BaseScheduler
from flask import Flask
from flask.cli import with_appcontext

from ..notifications.outbox import Courier
from . import heartbeat
from .sweeper import Sweeper

log = logging.getLogger(__name__)
TICK_SECONDS = 1.0


@dataclass
class Schedule:
    """A running scheduler and its two jobs."""

    scheduler: BaseScheduler
    sweeper: Sweeper
    courier: Courier
    abandoned: bool = False  # after stop(): a check or a delivery still runs in a thread

    def stop(self, grace: float) -> str:
        """Stop within about `grace` seconds (see the module's docstring); returns what it
        did, in words, and logs it. Nothing when the scheduler was shut down already: whoever
        did it stops its jobs too."""
        if self.scheduler.state == STATE_STOPPED:
            return "already stopped"
        self.scheduler.shutdown(wait=False)  # no more ticks; the ones under way see `closed`
        self.courier.closed = True
        deadline = time.monotonic() + grace
        checks = self.sweeper.shutdown(grace=grace)
        deliveries = self.courier.stop(grace=max(0.0, deadline - time.monotonic()))
        self.abandoned = checks.abandoned > 0 or self.courier.busy
        done = (f"check results written: {checks.finished}; checks abandoned at the end of the "
                f"grace: {checks.abandoned}; claims handed back: {checks.handed_back} providers, "
                f"{deliveries} notifications")
        log.info("scheduler stopped: %s", done)
        return done


def _schedule(scheduler: BaseScheduler, app: Flask) -> Schedule:
    schedule = Schedule(scheduler, Sweeper(app), Courier(app))
    tick = min(TICK_SECONDS, float(app.config["CHECK_INTERVAL"]))
    scheduler.add_job(schedule.sweeper.tick, "interval", seconds=tick, id="provider-checks",
                      max_instances=1, coalesce=True)
    # Notifications go out on their own job: a slow receiver never holds the checks back.
    scheduler.add_job(schedule.courier.tick, "interval", seconds=tick, id="notifications",
                      max_instances=1, coalesce=True)
    return schedule


def start_in_process(app: Flask) -> BackgroundScheduler:
    """Run the checks in a background thread of this process, stopped when it exits."""
    scheduler = BackgroundScheduler(daemon=True)
    schedule = _schedule(scheduler, app)
    app.extensions["check_sweeper"] = schedule.sweeper
    app.extensions["check_scheduler"] = scheduler
    scheduler.start()
    atexit.register(schedule.stop, float(app.config["CHECK_SHUTDOWN_GRACE"]))
    log.info("health-check scheduler started in-process")
    return scheduler


def init_app(app: Flask) -> None:
    """Start in-process when RUN_SCHEDULER says so; unset, under `flask run` only (the
    one-command start)."""
    heartbeat.init_app(app)
    wanted = app.config["RUN_SCHEDULER"]
    if _is_flask_run() if wanted is None else wanted:
        start_in_process(app)
    app.cli.add_command(scheduler_command)


def _is_flask_run() -> bool:
    ctx = click.get_current_context(silent=True)
    if ctx is None or ctx.info_name != "run":
        return False
    # With the reloader on, only the child process that serves requests runs the checks.
    reloading = ctx.params.get("reload")
    return not reloading or os.environ.get("WERKZEUG_RUN_MAIN") == "true"


class _StopSignals:
    """SIGTERM and SIGINT ask for a stop; the ones after the first change nothing (the stop
    is under way)."""

    def __init__(self):
        self.received: list[str] = []
        self._asked = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._ask)

    def _ask(self, signum, frame) -> None:
        self.received.append(signal.Signals(signum).name)
        self._asked.set()

    def wait(self) -> str:
        """Block until the first; returns its name."""
        while not self._asked.wait(1.0):
            pass
        return self.received[0]


@click.command("scheduler")
@with_appcontext
def scheduler_command():
    """Run the health-check scheduler in the foreground (production)."""
    from flask import current_app

    app = current_app._get_current_object()
    grace = float(app.config["CHECK_SHUTDOWN_GRACE"])
    signals = _StopSignals()  # before the first claim
    schedule = _schedule(BackgroundScheduler(daemon=True), app)
    schedule.scheduler.start()
    click.echo(f"Checking providers every {app.config['CHECK_INTERVAL']} s "
               f"with {app.config['CHECK_POOL_SIZE']} threads. Ctrl+C or SIGTERM to stop.")
    sys.stdout.flush()
    name = signals.wait()
    click.echo(f"{name}: stopping; the checks under way have {grace:g} s to finish.")
    sys.stdout.flush()
    click.echo(f"Stopped: {schedule.stop(grace)}.")
    sys.stdout.flush()
    if schedule.abandoned:
        # Python would wait for those threads at exit; their claims are already handed back.
        logging.shutdown()
        os._exit(0)
