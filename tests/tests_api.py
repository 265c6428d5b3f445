"""Calling the API from tests: a path under /api/v1 with a bearer token, or a live server."""
import logging
import threading
from contextlib import contextmanager

from werkzeug.serving import make_server


def call(client, method, path, token=None, **kwargs):
    headers = dict(kwargs.pop("headers", {}))
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return client.open(f"/api/v1{path}", method=method, headers=headers, **kwargs)


@contextmanager
def serving(app):
    """The app on a real HTTP port, for clients that are not the test client (curl, Schemathesis)."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
