"""Command-line tools: `flask --app app users create ...` for scripted installs."""
import click
from flask.cli import AppGroup

from .extensions import db
from .models import Organization, Role, User

cli = AppGroup("users", help="Manage users.")


@cli.command("create")
@click.option("--email", required=True)
@click.option("--username", required=True)
@click.option("--password", envvar="PROVIDER_ADMIN_NEW_USER_PASSWORD", required=True,
              help="Or set PROVIDER_ADMIN_NEW_USER_PASSWORD to keep it out of the shell history.")
@click.option("--role", type=click.Choice([r.value for r in Role]), default=Role.MEMBER.value)
@click.option("--organization", "organizations", multiple=True, help="Organization name; repeatable.")
def create_user(email, username, password, role, organizations):
    """Create a user non-interactively."""
    email = email.strip().lower()
    if len(password) < 8:
        raise click.BadParameter("at least 8 characters", param_hint="--password")
    if db.session.scalar(db.select(User.id).filter((User.email == email) | (User.username == username))):
        raise click.ClickException(f"a user with email {email} or username {username} exists already")
    orgs = []
    for name in organizations:
        org = db.session.scalar(db.select(Organization).filter_by(name=name))
        if org is None:
            raise click.ClickException(f"no organization named {name}")
        orgs.append(org)
    user = User(email=email, username=username, role=role, organizations=orgs)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    click.echo(f"Created {Role(role).label.lower()} {username} <{email}>.")
