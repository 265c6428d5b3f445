#!/bin/sh
# The image's commands (also usable on a plain host, from any directory):
#   web        gunicorn with gunicorn.conf.py (extra arguments go to gunicorn)
#   scheduler  the health-check and notification scheduler
#   migrate    wait for the database, then apply the migrations
#   anything else runs as given, e.g. `flask --app app users create ...`
# Each command replaces this shell (exec), so SIGTERM reaches the process itself.
set -eu

cd "$(dirname "$0")/.."

prepare_metrics() {
    # Several gunicorn workers count into one folder; a previous start's files would be
    # summed with this one's, so the web empties it (see README "Metrics").
    [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ] || return 0
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
    if [ "${1:-}" = empty ]; then
        find "$PROMETHEUS_MULTIPROC_DIR" -mindepth 1 -delete
    fi
}

wait_for_database() {
    # Bounded: a database that never comes gives a clear message and a failed start, and
    # the Job (or systemd) tries again.
    python - <<'PY'
import os
import sys
import time

import sqlalchemy as sa

from provider_admin.config import normalize_database_url

url = os.environ.get("DATABASE_URL") or os.environ.get("PROVIDER_ADMIN_DATABASE_URL")
if not url:
    sys.exit(0)  # SQLite in the instance folder, or a URL in its config.py
limit = float(os.environ.get("DATABASE_WAIT_SECONDS", "60"))
engine = sa.create_engine(normalize_database_url(url), poolclass=sa.pool.NullPool)
where = engine.url.render_as_string(hide_password=True)
deadline = time.monotonic() + limit
while True:
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        break
    except Exception as error:
        if time.monotonic() >= deadline:
            reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
            print(f"The database at {where} did not answer within {limit:g} s "
                  f"(DATABASE_WAIT_SECONDS): {reason}", file=sys.stderr)
            sys.exit(1)
        print(f"Waiting for the database at {where} ...", file=sys.stderr)
        time.sleep(2)
PY
}

command=${1:-web}
[ $# -gt 0 ] && shift
case "$command" in
    web)
        prepare_metrics empty
        exec gunicorn --config gunicorn.conf.py "$@"
        ;;
    scheduler)
        prepare_metrics
        exec flask --app app scheduler "$@"
        ;;
    migrate)
        prepare_metrics
        wait_for_database
        exec flask --app app db upgrade "$@"
        ;;
    *)
        prepare_metrics
        exec "$command" "$@"
        ;;
esac
