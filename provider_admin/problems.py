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
    body["instance"] = request.script_root + request.path  # under a URL prefix too
    response = Response(json.dumps(body), status, mimetype=MEDIA_TYPE)
    response.headers.update(headers or {})
    return response


def is_api_request() -> bool:
    """Whether the request is for the API (its errors are problem documents, not pages)."""
    path = request.path
    return path == PREFIX or path.startswith(PREFIX + "/")


def validation_problem(error) -> Response:
    """A request that its schema refused (a pydantic ValidationError): 422, one entry per field,
    each pointing where the caller put the value (`/body/pointer`, `#/query/name`)."""
    errors = [{"pointer": _pointer(item["loc"]), "detail": item["msg"]} for item in error.errors()]
    return problem(422, "Invalid request", "Some values were refused; see errors.", errors=errors)


def _pointer(loc) -> str:
    parts = [str(part).replace("~", "~0").replace("/", "~1") for part in loc]
    if parts and parts[0] in (request.view_args or {}):
        return "#/path/" + parts[0]
    if parts and parts[0] in request.args:
        return "#/query/" + parts[0]
    return "/" + "/".join(parts)
