from email_validator import EmailNotValidError, validate_email
from flask import current_app
from wtforms import RadioField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, ValidationError

from ..extensions import db
from ..forms import BaseForm
from ..models import NotificationTarget, TargetKind
from . import channels

MAX_RECIPIENTS = 20


class TargetForm(BaseForm):
    name = StringField("Name", validators=[DataRequired(message="Name the target, e.g. Platform team chat."),
                                           Length(max=100)])
    kind = RadioField("Kind", choices=[SelectChoice(k.value, k.label) for k in TargetKind], default=TargetKind.WEBHOOK.value)
    url = StringField("Webhook URL", validators=[Length(max=2048)])
    recipients = StringField("E-mail recipients", validators=[Length(max=1000)])

    def validate_name(self, field) -> None:
        field.data = field.data.strip()
        if db.session.scalar(db.select(NotificationTarget.id).filter_by(name=field.data)) is not None:
            raise ValidationError("Another target has this name.")

    def validate_url(self, field) -> None:
        if self.kind.data == TargetKind.EMAIL.value:
            field.data = ""
            return
        if not (field.data or "").strip():
            raise ValidationError("Enter the webhook's URL.")
        try:
            field.data = channels.check_url(
                field.data, allow_link_local=current_app.config["ALLOW_LINK_LOCAL_CLUSTERS"])
        except ValueError as error:
            raise ValidationError(str(error))

    def validate_recipients(self, field) -> None:
        if self.kind.data != TargetKind.EMAIL.value:
            field.data = ""
            return
        addresses = [a.strip() for a in (field.data or "").replace(";", ",").split(",") if a.strip()]
        if not addresses:
            raise ValidationError("Enter at least one e-mail address.")
        if len(addresses) > MAX_RECIPIENTS:
            raise ValidationError(f"At most {MAX_RECIPIENTS} addresses; use a mailing list for more.")
        normalized = []
        for address in addresses:
            try:
                normalized.append(validate_email(address, check_deliverability=False).normalized)
            except EmailNotValidError as error:
                raise ValidationError(f"{address}: {error}")
        field.data = ", ".join(normalized)
