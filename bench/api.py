"""Requests/s of the JSON API against a trivial Flask endpoint served the same way in the
same run (SPEC §10).

Three endpoints, each served by gunicorn with the same workers and loaded by the same client
threads:

  trivial  GET /                                   200 "ok" (bench/web_apps.py:trivial)
  list     GET /api/v1/providers?limit=100         200, the first page of N providers
  read     GET /api/v1/providers/<id>              200, one provider with its ETag

The API calls carry a personal access token (a hash lookup and the owner's role on every
request, as in production); the rate limit is raised out of the way. Targets:
list/trivial >= 0.2, read/trivial >= 0.4.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import fernet_key, make_app, revision, verdict, workdir  # noqa: E402
from bench.web import Gunicorn, Target, best_of_rounds, check_targets, populate  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--providers", type=int, default=500)
    p.add_argument("--seconds", type=float, default=5.0, help="per endpoint and round")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=4, help="load generator threads")
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers per server")
    p.add_argument("--max-requests", type=int, default=200_000, help="per endpoint and round")
    args = p.parse_args(argv)
    if args.providers < 100 or args.seconds <= 0 or args.rounds < 1 or args.concurrency < 1:
        p.error("need providers >= 100, seconds > 0, rounds >= 1, concurrency >= 1")
    return args


def token_for_admin(app) -> tuple[str, int]:
    """A read-only token of the site admin, and the id of a provider in the middle."""
    from provider_admin.extensions import db
    from provider_admin.models import Provider, User
    from provider_admin.tokens import service

    with app.app_context():
        admin = db.session.scalar(db.select(User).filter_by(username="admin"))
        _, secret = service.create(admin, "bench", 7, read_only=True)
        middle = db.session.scalar(db.select(Provider.id).order_by(Provider.id).offset(250).limit(1))
    return secret, middle


def main(argv=None) -> int:
    args = parse_args(argv)
    folder = workdir("bench-api")
    try:
        return run(args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(args, folder: str) -> int:
    db_url = f"sqlite:///{os.path.join(folder, 'bench.sqlite')}"
    secret_key, key = "bench-api-secret", fernet_key()
    app = make_app(db_url, SECRET_KEY=secret_key, ENCRYPTION_KEY=key)
    populate(app, args.providers)
    token, provider_id = token_for_admin(app)
    print(f"providers {args.providers}, gunicorn -w {args.workers} (sync) per server, "
          f"{args.concurrency} client threads, {args.seconds:g} s x {args.rounds} rounds, "
          f"{os.cpu_count()} CPUs; app at {revision()}")
    env = {"BENCH_DATABASE_URL": db_url, "BENCH_SECRET_KEY": secret_key, "BENCH_ENCRYPTION_KEY": key,
           "PROVIDER_ADMIN_INSTANCE_PATH": os.environ["PROVIDER_ADMIN_INSTANCE_PATH"],
           "PROVIDER_ADMIN_API_RATE_LIMIT": "100000000/minute"}
    headers = {"Authorization": f"Bearer {token}"}
    with Gunicorn("bench.web_apps:trivial()", args.workers, env, os.path.join(folder, "trivial.log")) as trivial, \
            Gunicorn("bench.web_apps:admin()", args.workers, env, os.path.join(folder, "admin.log")) as admin:
        targets = [Target("trivial", trivial, "/", 200),
                   Target("list", admin, "/api/v1/providers?limit=100", 200, headers),
                   Target("read", admin, f"/api/v1/providers/{provider_id}", 200, headers)]
        try:
            check_targets(targets, args.providers)
            best = best_of_rounds(targets, args)
        except RuntimeError as exc:
            with open(admin.log_path) as log:
                print(log.read()[-2000:])
            raise SystemExit(f"ERROR: {exc}")
    print("\nResults (best round of each)")
    for name, result in best.items():
        print(f"  {name:8s} {result['rps']:8.1f} req/s, server CPU {result['server_cpu_ms']:.2f} ms/req")
    verdict("list / trivial (req/s)", best["list"]["rps"] / best["trivial"]["rps"], 0.2)
    verdict("read / trivial (req/s)", best["read"]["rps"] / best["trivial"]["rps"], 0.4)
    return 0


if __name__ == "__main__":
    sys.exit(main())
