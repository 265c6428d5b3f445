from wtforms import RadioField, SelectField, StringField
from wtforms.validators import DataRequired, Length

from ..forms import BaseForm

LIFETIMES = [(7, "7 days"), (30, "30 days"), (90, "90 days"), (365, "1 year")]


class TokenForm(BaseForm):
    name = StringField("Name", validators=[DataRequired(message="Name the token after what uses it."),
                                           Length(max=100)])
    days = SelectField("Expires after", coerce=int, choices=LIFETIMES, default=30)
    access = RadioField("Access", choices=[("read", "Read-only"), ("write", "Read and write")], default="read")

    def validate_name(self, field) -> None:
        field.data = field.data.strip()
