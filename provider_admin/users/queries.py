"""Loading users for the views."""
from flask import abort

from ..extensions import db
from ..models import User


def get_user_or_404(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    return user
