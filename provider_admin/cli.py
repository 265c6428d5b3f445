"""Command-line tools: `flask --app app users create ...` for scripted installs, and
`users break-glass` for when no one can sign in."""
from types import SimpleNamespace

import click
from email_validator import EmailNotValidError, validate_email
from flask import current_app, url_for
from flask.cli import AppGroup

from . import audit
from .auth import breakglass
from .auth.forms import USERNAME
from .extensions import db
from .models import Organization, Role, User

cli = AppGroup("users", help="Manage users.")

# The actor the audit log names for changes made from the command line.
COMMAND_LINE = SimpleNamespace(id=None, email="(command line)")


@cli.command("create")
@click.option("--email", required=True)
@click.option("--username", required=True)
@click.option("--password", envvar="PROVIDER_ADMIN_NEW_USER_PASSWORD", required=True,
              help="Or set PROVIDER_ADMIN_NEW_USER_PASSWORD to keep it out of the shell history.")
@click.option("--role", type=click.Choice([r.value for r in Role]), default=Role.MEMBER.value)
@click.option("--organization", "organizations", multiple=True, help="Organization name; repeatable.")
def create_user(email, username, password, role, organizations):
    """Create a user non-interactively."""
    email = _check_identity(email.strip().lower(), username)
    if len(password) < 8:
        raise click.BadParameter("at least 8 characters", param_hint="--password")
    if db.session.scalar(db.select(User.id).filter((User.email == email) | (User.username == username))):
        raise click.ClickException(f"a user with email {email} or username {username} exists already")
    orgs = []
    for name in organizations:
        org = db.session.scalar(db.select(Organization).filter(db.func.lower(Organization.name) == name.lower()))
        if org is None:
            raise click.ClickException(f"no organization named {name}")
        orgs.append(org)
    user = User(email=email, username=username, role=role, organizations=orgs)
    user.set_password(password)
    db.session.add(user)
    db.session.flush()
    audit.record("user.create", user, {"role": role, "organizations": [o.name for o in orgs]}, actor=COMMAND_LINE)
    db.session.commit()
    click.echo(f"Created {Role(role).label.lower()} {username} <{email}>.")


def _check_identity(email: str, username: str) -> str:
    """The same rules as the web form: a real address and a lowercase username."""
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError as error:
        raise click.BadParameter(str(error), param_hint="--email") from None
    if not USERNAME.regex.match(username) or len(username) > 64:
        raise click.BadParameter(USERNAME.message, param_hint="--username")
    return email


@cli.command("break-glass")
@click.option("--email", required=True, help="The site admin to let in.")
@click.option("--minutes", type=click.IntRange(1, breakglass.MAX_MINUTES), default=10, show_default=True,
              help="How long the link is valid.")
@click.option("--base-url", default="http://localhost:5000", show_default=True,
              help="The address people open the app at (with its path prefix, if any).")
def break_glass(email, minutes, base_url):
    """Print a one-time sign-in link for a site admin, which works even with password sign-in off
    or the identity provider down."""
    user = db.session.scalar(db.select(User).filter(db.func.lower(User.email) == email.strip().lower()))
    if user is None or not user.active or user.role != Role.ADMIN.value:
        raise click.ClickException(f"{email} is not an active site admin")
    token = breakglass.issue(user, minutes, COMMAND_LINE)
    db.session.commit()
    with current_app.test_request_context("/"):  # the link's path; the address is the caller's
        path = url_for("auth.break_glass", token=token)
    click.echo(f"Open within {minutes} minutes, once: {base_url.rstrip('/')}{path}")
