from flask import Response, jsonify

from . import bp, readiness


@bp.get("/healthz")
def healthz():
    """The process answers (nothing else is asked: no database, no template)."""
    return Response("ok\n", mimetype="text/plain")


@bp.get("/readyz")
def readyz():
    """The database answers and its schema is at this code's revision: 200, else 503."""
    state = readiness.check()
    return jsonify(status="ready" if state.ready else "not ready",
                   checks={"database": state.database, "migrations": state.migrations}
                   ), 200 if state.ready else 503
