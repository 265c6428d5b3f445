from flask import request

from ..extensions import db
from ..htmx import render
from ..models import AuditEvent
from ..web import arg_int
from . import bp

PAGE_SIZE = 50


@bp.get("/")
def index():
    """The newest audit events first, filterable by target type."""
    page = arg_int(request.args, "page", 1)
    target_type = request.args.get("type") or None
    query = db.select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    if target_type:
        query = query.filter_by(target_type=target_type)
    events = db.paginate(query, page=page, per_page=PAGE_SIZE, error_out=False)
    return render("audit/index.html", "audit/_events.html", events=events, target_type=target_type)
