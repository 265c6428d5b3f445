from flask import Blueprint

bp = Blueprint("auth", __name__)

from . import breakglass, views  # noqa: E402,F401
