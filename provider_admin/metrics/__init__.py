"""/metrics in Prometheus' text format, for the team that operates Provider Admin.

What several processes would each count differently is computed from the database at
scrape time, so every gunicorn worker answers the same: provider status, the health checks
(counted in the transaction that records them, whichever scheduler process ran them), the
schedulers' ticks and how late checks run. What happens inside a web process (requests,
workspace builds) is counted in that process; under gunicorn, set PROMETHEUS_MULTIPROC_DIR
to an empty folder shared by its workers and every scrape sums them all.

`process` (in-process metrics), `database` (the collector that reads the database),
`tallies` (the check counts kept there), `views` (the route and who may read it).
"""
from flask import Blueprint, Flask

from ..extensions import csrf

bp = Blueprint("metrics", __name__)

from . import views  # noqa: E402,F401


def init_app(app: Flask) -> None:
    from ..web import networks
    from . import process

    csrf.exempt(bp)  # GET only, read by a scraper
    app.extensions["metrics_allow"] = networks(app.config["METRICS_ALLOW"], "PROVIDER_ADMIN_METRICS_ALLOW")
    process.init_app(app)
