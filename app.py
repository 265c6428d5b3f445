"""Entry point: `flask --app app run` (development) or `gunicorn 'app:create_app()'`."""
from provider_admin import create_app

__all__ = ["create_app"]
