"""The embeddable status view (/embed/providers): the providers a user may see, compact and
read-only, for a frame on an intranet portal's page or a wall screen.

No navigation, no actions, no forms: nothing in it changes anything, so the frame needs no
CSRF token. It polls like the providers page (the same fingerprint, providers/fingerprint.py)
and swaps itself whole when what it shows changed. Signed out, it shows a link that opens the
sign-in page in a new tab, and picks the session up on its next poll.
"""
from flask import Blueprint

bp = Blueprint("embed", __name__, url_prefix="/embed")

from . import views  # noqa: E402,F401
