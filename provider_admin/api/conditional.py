"""Every read answers with an ETag. A provider's, organization's or user's is the version of
its settings, for If-Match on changes; any other read's is computed from its body (weak), and
If-None-Match with it is answered 304 Not Modified, so a script polling a list or a build log
costs little when nothing changed. A settings version never answers 304: a provider's live
status changes without it."""
from flask import request

from . import bp


@bp.after_request
def _etag(response):
    if request.method != "GET" or response.status_code != 200 or "ETag" in response.headers \
            or response.mimetype != "application/json":
        return response
    response.add_etag(weak=True)
    return response.make_conditional(request)
