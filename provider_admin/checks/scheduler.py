"""APScheduler wiring: in the web process under `flask run`, or its own process."""
import logging
import os
import sys

import click
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask
from flask.cli import with_appcontext

from ..notifications.outbox import Courier
from . import heartbeat
from .sweeper import Sweeper

log = logging.getLogger(__name__)
TICK_SECONDS = 1.0


def _schedule(scheduler, app: Flask) -> Sweeper:
    sweeper = Sweeper(app)
    tick = min(TICK_SECONDS, float(app.config["CHECK_INTERVAL"]))
    scheduler.add_job(sweeper.tick, "interval", seconds=tick, id="provider-checks",
                      max_instances=1, coalesce=True)
    # Notifications go out on their own job: a slow receiver never holds the checks back.
    scheduler.add_job(Courier(app).tick, "interval", seconds=tick, id="notifications",
                      max_instances=1, coalesce=True)
    return sweeper


def start_in_process(app: Flask) -> BackgroundScheduler:
    """Run the checks in a background thread of this process."""
    scheduler = BackgroundScheduler(daemon=True)
    app.extensions["check_sweeper"] = _schedule(scheduler, app)
    app.extensions["check_scheduler"] = scheduler
    scheduler.start()
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


@click.command("scheduler")
@with_appcontext
def scheduler_command():
    """Run the health-check scheduler in the foreground (production)."""
    from flask import current_app

    app = current_app._get_current_object()
    scheduler = BlockingScheduler()
    sweeper = _schedule(scheduler, app)
    click.echo(f"Checking providers every {app.config['CHECK_INTERVAL']} s "
               f"with {app.config['CHECK_POOL_SIZE']} threads. Ctrl+C to stop.", nl=True)
    sys.stdout.flush()
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        sweeper.shutdown()  # the checks under way finish and their results are written
