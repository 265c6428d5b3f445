from flask import abort, flash, redirect, request, url_for
from flask_login import current_user

from ..extensions import db
from ..htmx import render
from ..forms import ConfirmForm
from . import bp, service
from .forms import TokenForm
from .models import ApiToken


def get_token_or_404(token_id: int) -> ApiToken:
    """The token, if the current user may see it (their own, or any for site admins)."""
    token = db.session.get(ApiToken, token_id)
    if token is None or not (current_user.is_admin or token.user_id == current_user.id):
        abort(404)
    return token


def _page(form: TokenForm, status: int = 200, secret: str | None = None, everyone: bool = False):
    tokens = db.session.scalars(service.visible_to(current_user, everyone)).all()
    return render("tokens/index.html", "tokens/_list.html", status, form=form, tokens=tokens,
                  secret=secret, everyone=everyone, confirm=ConfirmForm())


@bp.route("/", methods=["GET", "POST"])
def index():
    """My API tokens; a new one is shown once, on the answer that created it."""
    form = TokenForm()
    if request.method == "GET":
        return _page(form)
    if not form.validate():
        return _page(form, 422)
    token, secret = service.create(current_user, form.name.data, form.days.data, form.access.data == "read")
    return _page(TokenForm(formdata=None), 201, secret=secret)


@bp.get("/all")
def everyone():
    """Every user's tokens, for site admins."""
    if not current_user.is_admin:
        abort(403)
    return _page(TokenForm(formdata=None), everyone=True)


@bp.post("/<int:token_id>/revoke")
def revoke(token_id: int):
    """Revoke a token at once; scripts using it get 401 from the next request on."""
    token = get_token_or_404(token_id)
    if not ConfirmForm().validate():
        abort(400)
    service.revoke(token, current_user)
    flash(f"The token \"{token.name}\" is revoked.", "success")
    back = "tokens.everyone" if request.form.get("back") == "all" and current_user.is_admin else "tokens.index"
    return redirect(url_for(back), code=303)
