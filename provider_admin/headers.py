"""Security headers on every response.

The Content-Security-Policy allows scripts, styles and requests from the app's own origin
only: no inline script, no eval (htmx is configured not to need either, see base.html), and
framing only by the origins in FRAME_ANCESTORS (framing.py). Branding (branding.py) may add
the origin of its logo to img-src and the hash of its one inline <style> to style-src. Answers other than static files may hold
secrets or a form's CSRF token, so browsers and proxies do not store them.
"""
from flask import Flask, request

from . import branding, framing


def content_security_policy(frame_ancestors: str, brand: branding.Brand | None = None) -> str:
    images = " ".join(("'self' data:", *([brand.logo_origin] if brand and brand.logo_origin else [])))
    styles = " ".join(("'self'", *([f"'{brand.style_hash}'"] if brand and brand.style_hash else [])))
    return "; ".join((
        "default-src 'self'",
        "script-src 'self'",
        f"style-src {styles}",
        f"img-src {images}",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        f"frame-ancestors {frame_ancestors}",
    ))


def init_app(app: Flask) -> None:
    frame_ancestors = " ".join(framing.parse(app.config["FRAME_ANCESTORS"]))
    fixed = {
        "Content-Security-Policy": content_security_policy(frame_ancestors, branding.brand_of(app)),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    # Older browsers that ignore frame-ancestors understand only these two answers; with a
    # portal's origin listed there is none that says so, and SAMEORIGIN would refuse the portal.
    if frame_ancestors in ("'self'", "'none'"):
        fixed["X-Frame-Options"] = "SAMEORIGIN" if frame_ancestors == "'self'" else "DENY"

    @app.after_request
    def _security_headers(response):
        for name, value in fixed.items():
            response.headers.setdefault(name, value)
        if request.endpoint != "static":
            response.headers["Cache-Control"] = "no-store"
        return response
