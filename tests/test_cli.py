"""`flask users create`: scripted installs create users with a role and organizations."""
import pytest

from provider_admin.extensions import db
from provider_admin.models import AuditEvent, Role, User

# These tests read and change the database directly, in the app's context.
pytestmark = pytest.mark.usefixtures("app_context")


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def create(runner, *args, env=None):
    return runner.invoke(args=["users", "create", *args], env=env)


def get_user(username: str) -> User | None:
    db.session.expire_all()
    return db.session.scalar(db.select(User).filter_by(username=username))


def user_count() -> int:
    return db.session.scalar(db.select(db.func.count(User.id)))


def test_create_with_role_and_organizations(runner, make_org):
    make_org("Acme")
    make_org("Globex")
    make_org("Initech")
    result = create(runner, "--email", " Ops@Example.com ", "--username", "ops", "--password", "long enough",
                    "--role", "manager", "--organization", "Globex", "--organization", "acme")
    assert result.exit_code == 0, result.output
    assert result.output == "Created site manager ops <ops@example.com>.\n"
    user = get_user("ops")
    assert (user.email, user.role, user.active) == ("ops@example.com", "manager", True)
    assert [o.name for o in user.organizations] == ["Acme", "Globex"]
    assert user.check_password("long enough")


def test_create_is_audited(runner, make_org):
    make_org("Acme")
    assert create(runner, "--email", "ops@example.com", "--username", "ops", "--password", "long enough",
                  "--role", "admin", "--organization", "Acme").exit_code == 0
    event = db.session.scalar(db.select(AuditEvent))
    assert (event.action, event.actor, event.actor_id, event.target_name) == (
        "user.create", "(command line)", None, "ops@example.com")
    assert event.changes == {"role": "admin", "organizations": ["Acme"]}
    assert "long enough" not in str(event.changes)


def test_default_role_is_member(runner):
    assert create(runner, "--email", "dev@example.com", "--username", "dev", "--password", "long enough").exit_code == 0
    assert get_user("dev").role == Role.MEMBER.value


def test_password_from_the_environment(runner):
    result = create(runner, "--email", "dev@example.com", "--username", "dev",
                    env={"PROVIDER_ADMIN_NEW_USER_PASSWORD": "from the env"})
    assert result.exit_code == 0, result.output
    assert get_user("dev").check_password("from the env")


def test_first_user_from_the_cli_ends_setup(app, runner, client):
    assert client.get("/login").headers["Location"] == "/setup"
    assert create(runner, "--email", "root@example.com", "--username", "root", "--password", "long enough",
                  "--role", "admin").exit_code == 0
    with app.app_context():  # the setup redirect was decided in the earlier request's context
        assert client.get("/setup").headers["Location"] == "/login"


@pytest.mark.parametrize("email, username", [
    ("taken@example.com", "someone"),
    ("TAKEN@example.com", "someone"),
    ("someone@example.com", "taken"),
])
def test_duplicate_is_refused_with_a_clear_message(runner, actions, email, username):
    actions.user(Role.MEMBER.value, email="taken@example.com", username="taken")
    result = create(runner, "--email", email, "--username", username, "--password", "long enough")
    assert result.exit_code == 1
    assert f"Error: a user with email {email.lower()} or username {username} exists already" in result.output
    assert user_count() == 1


@pytest.mark.parametrize("password", ["", "short", "1234567"])
def test_short_password_is_refused(runner, password):
    result = create(runner, "--email", "dev@example.com", "--username", "dev", "--password", password)
    assert result.exit_code == 2
    assert "Invalid value for --password: at least 8 characters" in result.output
    assert user_count() == 0


def test_unknown_organization_is_refused(runner, make_org):
    make_org("Acme")
    result = create(runner, "--email", "dev@example.com", "--username", "dev", "--password", "long enough",
                    "--organization", "Acme", "--organization", "Nope")
    assert result.exit_code == 1
    assert "Error: no organization named Nope" in result.output
    assert user_count() == 0


@pytest.mark.parametrize("args, message", [
    (["--email", "not-an-email", "--username", "dev"], "Invalid value for --email"),
    (["--email", "dev@example.com", "--username", "Dev User"], "Invalid value for --username: Use lowercase"),
    (["--email", "dev@example.com", "--username", "dev", "--role", "owner"], "Invalid value for '--role'"),
    (["--email", "dev@example.com"], "Missing option '--username'"),
])
def test_bad_input_is_refused(runner, args, message):
    result = create(runner, *args, "--password", "long enough")
    assert result.exit_code == 2
    assert message in result.output
    assert user_count() == 0


def test_missing_password_is_refused(runner, monkeypatch):
    monkeypatch.delenv("PROVIDER_ADMIN_NEW_USER_PASSWORD", raising=False)
    result = create(runner, "--email", "dev@example.com", "--username", "dev")
    assert result.exit_code == 2 and "Missing option '--password'" in result.output


def test_help_names_the_options(runner):
    result = runner.invoke(args=["users", "create", "--help"])
    for option in ("--email", "--username", "--password", "--role", "--organization",
                   "PROVIDER_ADMIN_NEW_USER_PASSWORD"):
        assert option in result.output
