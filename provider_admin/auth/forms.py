from flask import current_app
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, Length, Optional, Regexp

from ..forms import BaseForm

USERNAME = Regexp(
    r"^[a-z0-9]([a-z0-9_.-]*[a-z0-9])?\Z",
    message="Use lowercase letters, digits, '.', '_' or '-', starting and ending with a letter or digit.",
)


def strip(value):
    """Drop the blanks that come along when an address is pasted."""
    return value.strip() if isinstance(value, str) else value


class LoginForm(BaseForm):
    email = EmailField("Email", filters=[strip], validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired()])


class SetupForm(BaseForm):
    email = EmailField("Email", filters=[strip], validators=[DataRequired(), Email(), Length(max=254)])
    username = StringField("Username", validators=[DataRequired(), Length(max=64), USERNAME])
    password = PasswordField("Password", validators=[DataRequired(), Length(min=8, max=200)])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # With password sign-in off the first admin signs in with single sign-on (or the
        # trusted header) as this email: a password here could never be used.
        self.asks_password = current_app.config["PASSWORD_SIGN_IN"]
        if not self.asks_password:
            self.password.validators = [Optional()]
