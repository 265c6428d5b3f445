"""Errors of the JSON API as `application/problem+json` (RFC 9457), and where the API starts."""
from flask import Response, json, request
from werkzeug.http import HTTP_STATUS_CODES

MEDIA_TYPE = "application/problem+json"
PREFIX = "/api/v1"


def problem(status: int, title: str | None = None, detail: str | None = None, *,
            errors: list[dict] | None = None, headers: dict | None = None) -> Response:
    """An RFC 9457 problem document; `errors` lists per-field problems as
    {"pointer": "/json/pointer", "detail": "..."}."""
    body = {"type": "about:blank", "title": title or HTTP_STATUS_CODES.get(status, "Error"), "status": status}
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = errors
    body["instance"] = request.path
    response = Response(json.dumps(body), status, mimetype=MEDIA_TYPE)
    response.headers.update(headers or {})
    return response


def is_api_request() -> bool:
    """Whether the request is for the API (its errors are problem documents, not pages)."""
    path = request.path
    return path == PREFIX or path.startswith(PREFIX + "/")
