from wtforms import SelectField, StringField
from wtforms.validators import DataRequired, Length, Regexp, ValidationError

from ..extensions import db
from ..forms import BaseForm
from ..models import Organization


class OrganizationForm(BaseForm):
    name = StringField("Name", validators=[
        DataRequired(), Length(max=64),
        Regexp(r"^[A-Za-z0-9][A-Za-z0-9 _.-]*\Z", message="Use letters, digits, spaces, '.', '_' or '-'."),
    ])

    def __init__(self, *args, organization=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.organization = organization

    def validate_name(self, field) -> None:
        field.data = field.data.strip()
        query = db.select(Organization.id).filter(db.func.lower(Organization.name) == field.data.lower())
        if self.organization is not None:
            query = query.filter(Organization.id != self.organization.id)
        if db.session.scalar(query) is not None:
            raise ValidationError(f'An organization named "{field.data}" already exists.')


class AddMemberForm(BaseForm):
    user_id = SelectField("User", coerce=int, validators=[DataRequired(message="Choose a user.")])
