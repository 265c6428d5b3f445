from flask import abort, flash, request, url_for
from flask_login import current_user

from ..extensions import db
from ..forms import ConfirmForm
from ..htmx import done, render
from ..models import DeliveryStatus, NotificationTarget
from . import bp, service
from .forms import TargetForm


def get_target_or_404(target_id: int) -> NotificationTarget:
    target = db.session.get(NotificationTarget, target_id)
    if target is None:
        abort(404)
    return target


def _page(form: TargetForm, status: int = 200, secret: str | None = None, created=None):
    targets = db.session.scalars(db.select(NotificationTarget).order_by(NotificationTarget.name)).all()
    return render("notifications/index.html", "notifications/_targets.html", status, form=form,
                  targets=targets, deliveries=service.recent_deliveries(targets), secret=secret,
                  created=created, confirm=ConfirmForm())


@bp.route("/", methods=["GET", "POST"])
def index():
    """The notification targets with their recent deliveries; a new one is added here."""
    form = TargetForm()
    if request.method == "GET":
        return _page(form)
    if not form.validate():
        return _page(form, 422)
    target, secret = service.create(form, current_user)
    return _page(TargetForm(formdata=None), 201, secret=secret, created=target)


@bp.post("/<int:target_id>/test")
def test(target_id: int):
    """Send a test message to the target now; the outcome shows in its delivery log."""
    target = get_target_or_404(target_id)
    if not ConfirmForm().validate():
        abort(400)
    delivery = service.send_test(target, current_user)
    if delivery.status == DeliveryStatus.DELIVERED.value:
        flash(f"The test message reached {target.name}.", "success")
    else:
        flash(f"The test message did not reach {target.name}: {delivery.last_error}", "error")
    return done(url_for(".index") + f"#target-{target.id}")


@bp.post("/<int:target_id>/delete")
def delete(target_id: int):
    """Remove a target with its delivery log."""
    target = get_target_or_404(target_id)
    if not ConfirmForm().validate():
        abort(400)
    service.delete(target, current_user)
    flash(f"The target {target.name} is removed.", "success")
    return done(url_for(".index"))
