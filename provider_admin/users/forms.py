from flask import current_app
from wtforms import BooleanField, EmailField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, InputRequired, Length, Optional, ValidationError

from ..auth.forms import USERNAME, strip
from ..extensions import db
from ..forms import BaseForm
from ..models import Role, User
from ..providers.forms import CheckboxListField

MANAGED = "Role managed by the identity provider"
ROLE_CHOICES = [SelectChoice(r.value, r.label) for r in Role]


class UserForm(BaseForm):
    email = EmailField("Email", filters=[strip], validators=[DataRequired(), Email(), Length(max=254)])
    username = StringField("Username", validators=[DataRequired(), Length(max=64), USERNAME])
    password = PasswordField("Password", validators=[Optional(), Length(min=8, max=200)])
    role = SelectField("Role", choices=ROLE_CHOICES, default=Role.MEMBER.value)  # least power unless chosen
    organizations = CheckboxListField("Organizations", coerce=int)
    active = BooleanField("Active", default=True)

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        # A new user needs a password while passwords sign people in; an edit keeps the current
        # one when left empty. With password sign-in off, accounts are matched at single sign-on.
        self.asks_password = current_app.config["PASSWORD_SIGN_IN"]
        if user is None and self.asks_password:
            self.password.validators = [InputRequired("Set an initial password."), Length(min=8, max=200)]

    def _unique(self, column, value: str, label: str) -> None:
        query = db.select(User.id).filter(column == value)
        if self.user is not None:
            query = query.filter(User.id != self.user.id)
        if db.session.scalar(query) is not None:
            raise ValidationError(f"Another user has this {label}.")

    def validate_email(self, field) -> None:
        field.data = field.data.strip().lower()
        self._unique(User.email, field.data, "email")

    def validate_role(self, field) -> None:
        if self.user is not None and self.user.idp_managed and field.data != self.user.role:
            raise ValidationError(f"{MANAGED}: change {self.user.username}'s groups there; "
                                  "a role set here would be overwritten at the next sign-in.")

    def validate_username(self, field) -> None:
        self._unique(User.username, field.data, "username")
