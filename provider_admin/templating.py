"""Jinja filters and globals shared by every template."""
from datetime import datetime, timezone

from flask import Flask, get_flashed_messages

from .problems import PREFIX as API_PREFIX
from .kube import token_expiry_phrase
from .kube.health import TOKEN_WARNING_DAYS


def time_ago(value: datetime | None) -> str:
    if value is None:
        return "never"
    seconds = int((datetime.now(timezone.utc) - value).total_seconds())
    if seconds < 0:
        return "just now"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return f"{seconds} s ago" if seconds >= 5 else "just now"


def iso(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else ""


def init_app(app: Flask) -> None:
    app.jinja_env.add_extension("jinja2.ext.do")
    app.add_template_filter(time_ago)
    app.add_template_filter(iso)
    app.add_template_filter(token_expiry_phrase, "token_expiry")
    app.add_template_global(TOKEN_WARNING_DAYS, "TOKEN_WARNING_DAYS")
    app.add_template_global(API_PREFIX, "API_PREFIX")
    app.add_template_global(get_flashed_messages)
    app.add_template_global(lambda: datetime.now(timezone.utc), "now")
