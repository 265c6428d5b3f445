"""The JSON API under /api/v1/: bearer tokens instead of sessions, problem+json errors, and an
OpenAPI 3.1 description generated from the schemas that validate the requests."""
from flask_openapi3 import APIBlueprint

from ..extensions import csrf
from ..problems import PREFIX

bp = APIBlueprint("api", __name__, url_prefix=PREFIX, abp_security=[{"token": []}],
                  operation_id_callback=lambda *, bp_name="", name="", path="", method="": name)
# A token is sent by a script, never attached by a browser on its own: no cookie, no CSRF.
csrf.exempt(bp)

from . import auth, conditional, document, organizations, providers, users, views, workspaces  # noqa: E402,F401

for area in (providers, organizations, users, workspaces):
    bp.register_api(area.bp)
    csrf.exempt(area.bp)
from .ratelimit import init_app  # noqa: E402,F401
