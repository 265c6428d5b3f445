"""The one place that decides between a full page and an HTMX fragment."""
import json

from flask import make_response, redirect, render_template, request
from markupsafe import Markup


def is_fragment_request() -> bool:
    """An HTMX request that wants a fragment. Boosted navigation wants the page, and so does a
    history restore (Back to a pushed URL that htmx no longer has in its cache)."""
    headers = request.headers
    return (headers.get("HX-Request") == "true" and headers.get("HX-Boosted") != "true"
            and headers.get("HX-History-Restore-Request") != "true")


def render(page: str, fragment: str, status: int = 200, **context):
    """Render the page, or only its fragment for HTMX; the response varies by HX-Request."""
    template = fragment if is_fragment_request() else page
    response = make_response(render_template(template, **context), status)
    response.vary.add("HX-Request")
    return response


def render_rendered(page: str, fragment_html: str, status: int = 200, out_of_band: str | None = None,
                    **context):
    """Like `render`, for a fragment rendered already: the page shows it as `fragment_html`;
    HTMX gets it followed by the template `out_of_band` (the page's parts held elsewhere)."""
    if not is_fragment_request():
        body = render_template(page, fragment_html=fragment_html, **context)
    else:
        body = fragment_html + (Markup(render_template(out_of_band, **context)) if out_of_band else "")
    response = make_response(body, status)
    response.vary.add("HX-Request")
    return response


def done(location: str, *, event: str | None = None, fragment: str | None = None, **context):
    """After a successful change: redirect a plain request (303); give HTMX the fragment."""
    if not is_fragment_request():
        return redirect(location, code=303)
    body = render_template(fragment, **context) if fragment else ""
    response = make_response(body, 200)
    response.vary.add("HX-Request")
    if event:
        response.headers["HX-Trigger"] = json.dumps({event: True})
    if fragment is None:
        response.headers["HX-Redirect"] = location
    return response
