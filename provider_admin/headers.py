"""Security headers on every response.

The Content-Security-Policy allows scripts, styles and requests from the app's own origin
only: no inline script, no eval (htmx is configured not to need either, see base.html), and
framing only by the origins in FRAME_ANCESTORS. Answers other than static files may hold
secrets or a form's CSRF token, so browsers and proxies do not store them.
"""
from flask import Flask, request


def content_security_policy(frame_ancestors: str) -> str:
    return "; ".join((
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        f"frame-ancestors {frame_ancestors}",
    ))


def init_app(app: Flask) -> None:
    frame_ancestors = " ".join(str(app.config["FRAME_ANCESTORS"] or "'none'").replace(",", " ").split())
    fixed = {
        "Content-Security-Policy": content_security_policy(frame_ancestors),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    # Older browsers that ignore frame-ancestors understand only these two answers.
    if frame_ancestors in ("'self'", "'none'"):
        fixed["X-Frame-Options"] = "SAMEORIGIN" if frame_ancestors == "'self'" else "DENY"

    @app.after_request
    def _security_headers(response):
        for name, value in fixed.items():
            response.headers.setdefault(name, value)
        if request.endpoint != "static":
            response.headers["Cache-Control"] = "no-store"
        return response
