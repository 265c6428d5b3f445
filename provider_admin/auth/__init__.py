"""Who is signed in and what they may do: sign-in and setup, role checks, the recent-user cache.

`views` (the sign-in, first-account and sign-out pages), `signin` and `throttle` (password
checks, throttled per account and address), `roles` (the role check every blueprint
applies), `recent` (the signed-in user as read a few seconds ago, for the badge poll).
"""
from flask import Blueprint

bp = Blueprint("auth", __name__)

from . import breakglass, views  # noqa: E402,F401
