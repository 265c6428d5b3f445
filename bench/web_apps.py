"""WSGI apps for bench/web.py, served by gunicorn:

    gunicorn 'bench.web_apps:admin()'    the real app on BENCH_DATABASE_URL, with
                                         BENCH_SECRET_KEY and BENCH_ENCRYPTION_KEY
    gunicorn 'bench.web_apps:trivial()'  a Flask app whose only view returns "ok": the
                                         baseline of what gunicorn + Flask cost per request
"""
import os


def admin():
    from provider_admin import create_app

    return create_app({
        "SQLALCHEMY_DATABASE_URI": os.environ["BENCH_DATABASE_URL"],
        "SECRET_KEY": os.environ["BENCH_SECRET_KEY"],
        "ENCRYPTION_KEY": os.environ["BENCH_ENCRYPTION_KEY"],
        "AUTO_MIGRATE": False,  # bench/web.py migrated the database before starting us
        "RUN_SCHEDULER": False,
    })


def trivial():
    from flask import Flask

    app = Flask(__name__)

    @app.get("/")
    def ok():
        return "ok"

    return app
