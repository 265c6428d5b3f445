from flask_login import current_user
from sqlalchemy.orm import selectinload

from ..extensions import db
from ..htmx import render
from ..models import Workspace
from . import bp


@bp.get("/")
def index():
    """My workspaces; site admins and managers see everyone's."""
    query = db.select(Workspace).options(
        selectinload(Workspace.owner), selectinload(Workspace.provider), selectinload(Workspace.organization)
    ).order_by(Workspace.name)
    if not current_user.can_manage:
        query = query.filter(Workspace.owner_id == current_user.id)
    return render("workspaces/index.html", "workspaces/_list.html", workspaces=db.session.scalars(query).all())
