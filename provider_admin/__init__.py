"""Provider Admin: a web admin for the Kubernetes clusters that host developer workspaces."""
from pathlib import Path

from flask import Flask
from flask_openapi3 import OpenAPI

ROOT = Path(__file__).resolve().parent.parent


def create_app(test_config: dict | None = None) -> Flask:
    """Build the application: config, extensions, blueprints, database."""
    from . import caches, config, database, errors, problems, web
    from .api import document

    # Flask, plus the OpenAPI description of the API blueprint's routes (flask-openapi3).
    app = OpenAPI(
        __name__,
        info=document.INFO,
        security_schemes=document.SECURITY_SCHEMES,
        doc_ui=False,
        validation_error_status=422,
        validation_error_model=document.Problem,
        validation_error_callback=problems.validation_problem,
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
    caches.init_app(app)
    errors.init_app(app)
    _register_blueprints(app)
    database.when_migrated(app, builtin.init_app)
    scheduler.init_app(app)
    return app


def _register_blueprints(app: Flask) -> None:
    from . import (api, audit, auth, embed, health, metrics, notifications, oidc, organizations, providers, tokens,
                   users, workspaces)
    from .cli import cli
    from .providers.commands import cli as providers_cli

    oidc.init_app(app)
    for module in (health, auth, oidc, workspaces, providers, organizations, users, audit, tokens, notifications, embed,
                   metrics):
        app.register_blueprint(module.bp)
    health.init_app(app)
    metrics.init_app(app)
    app.register_api(api.bp)  # a blueprint whose routes also join the OpenAPI document
    api.init_app(app)
    app.cli.add_command(cli)
    app.cli.add_command(providers_cli)
