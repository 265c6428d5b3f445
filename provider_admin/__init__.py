"""Provider Admin: a web admin for the Kubernetes clusters that host developer workspaces."""
from pathlib import Path

from flask import Flask

ROOT = Path(__file__).resolve().parent.parent


def create_app(test_config: dict | None = None) -> Flask:
    """Build the application: config, extensions, blueprints, database."""
    from . import config, database, errors, web

    app = Flask(
        __name__,
        instance_relative_config=True,
        instance_path=config.instance_path(ROOT),
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    from .checks import scheduler
    from .providers import builtin

    config.load(app, test_config)
    web.init_app(app)
    database.init_app(app)
    errors.init_app(app)
    _register_blueprints(app)
    builtin.init_app(app)
    scheduler.init_app(app)
    return app


def _register_blueprints(app: Flask) -> None:
    from . import audit, auth, oidc, organizations, providers, users, workspaces
    from .cli import cli

    oidc.init_app(app)
    for module in (auth, oidc, workspaces, providers, organizations, users, audit):
        app.register_blueprint(module.bp)
    app.cli.add_command(cli)
