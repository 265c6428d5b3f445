#!/bin/sh
# The image's commands (also usable on a plain host, from any directory):
#   web        gunicorn with deploy/gunicorn.conf.py (extra arguments go to gunicorn)
#   scheduler  the health-check and notification scheduler, once the database is migrated
#              to this code's revision (or past it)
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
    # the Job (or systemd, or the pod's restart) tries again. With `migrated`, also wait while
    # its schema is behind this code's: a release's scheduler starts as its migration ends.
    WAIT_FOR_MIGRATIONS=${1:-} python - <<'PY'
import os
import sys
import time

import sqlalchemy as sa
from alembic.script import ScriptDirectory

from provider_admin.config import normalize_database_url
from provider_admin.database import MIGRATIONS, script_head

url = os.environ.get("DATABASE_URL") or os.environ.get("PROVIDER_ADMIN_DATABASE_URL")
if not url:
    sys.exit(0)  # SQLite in the instance folder, or a URL in its config.py
limit = float(os.environ.get("DATABASE_WAIT_SECONDS", "60"))
engine = sa.create_engine(normalize_database_url(url), poolclass=sa.pool.NullPool)
where = engine.url.render_as_string(hide_password=True)


def behind(connection) -> str | None:
    """The database's revision while this code's migrations have not reached it yet."""
    try:
        current = ",".join(sorted(connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars()))
    except sa.exc.DBAPIError:
        return "none"
    known = {script.revision for script in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}
    if current == script_head() or (current and current not in known):
        return None  # at this code's revision, or past it (a newer release migrated it)
    return current or "none"


deadline = time.monotonic() + limit
within = f"within {limit:g} s (DATABASE_WAIT_SECONDS)"
while True:
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
            revision = behind(connection) if os.environ.get("WAIT_FOR_MIGRATIONS") else None
        if revision is None:
            break
        waiting = f"the migrations of the database at {where} (at {revision}, this code at {script_head()})"
        failure = f"The database at {where} was not migrated to {script_head()} {within}: it is at {revision} (migrate)"
    except Exception as error:
        waiting = f"the database at {where}"
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        failure = f"The database at {where} did not answer {within}: {reason}"
    if time.monotonic() >= deadline:
        print(failure, file=sys.stderr)
        sys.exit(1)
    print(f"Waiting for {waiting} ...", file=sys.stderr)
    time.sleep(2)
PY
}

command=${1:-web}
[ $# -gt 0 ] && shift
case "$command" in
    web)
        prepare_metrics empty
        exec gunicorn --config deploy/gunicorn.conf.py "$@"
        ;;
    scheduler)
        prepare_metrics
        wait_for_database migrated
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
