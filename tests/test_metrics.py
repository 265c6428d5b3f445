"""/metrics (SPEC §11): Prometheus' text format read with prometheus-client's own parser;
provider status, checks, lag and builds from the database or summed over the processes, the
same whichever gunicorn worker answers; readable only by the listed addresses or a token."""
import re
import time
import urllib.request
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from provider_admin.checks import check_now
from provider_admin.extensions import db
from provider_admin.metrics import tallies
from provider_admin.models import CheckTally, Provider, ProviderCheck, SchedulerHeartbeat, utcnow

from . import servers
from .test_workspaces import created, org, provider, wait_status  # noqa: F401,F811  (fixtures)

LOCAL = {"REMOTE_ADDR": "127.0.0.1"}


@pytest.fixture
def app_config(database_url, tmp_path):
    return {"METRICS_ALLOW": "127.0.0.1, 10.1.0.0/16", "METRICS_TOKEN": "scrape-secret"}


def scrape(client, **environ) -> dict:
    """{(name, labels as a sorted tuple): value} of every sample."""
    response = client.get("/metrics", environ_base={**LOCAL, **environ})
    assert response.status_code == 200, response.text
    assert response.content_type == "text/plain; version=0.0.4; charset=utf-8"
    return samples(response.text)


def samples(text: str) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def of(found: dict, name: str, **labels) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


@pytest.mark.parametrize("environ, headers, status", [
    ({"REMOTE_ADDR": "127.0.0.1"}, {}, 200),
    ({"REMOTE_ADDR": "10.1.200.3"}, {}, 200),
    ({"REMOTE_ADDR": "::ffff:127.0.0.1"}, {}, 200),
    ({"REMOTE_ADDR": "10.2.0.1"}, {}, 403),
    ({"REMOTE_ADDR": "10.2.0.1"}, {"Authorization": "Bearer scrape-secret"}, 200),
    ({"REMOTE_ADDR": "10.2.0.1"}, {"Authorization": "Bearer scrape-secre"}, 403),
    ({"REMOTE_ADDR": "10.2.0.1"}, {"Authorization": "Basic scrape-secret"}, 403),
])
def test_only_listed_addresses_or_the_token_read_it(client, environ, headers, status):
    response = client.get("/metrics", environ_base=environ, headers=headers)
    assert response.status_code == status
    assert "Set-Cookie" not in response.headers  # a scrape is not a visit
    if status == 403:
        assert "PROVIDER_ADMIN_METRICS_ALLOW" in response.text and "scrape-secret" not in response.text


def test_it_is_closed_until_a_setting_opens_it(app, client):
    app.extensions["metrics_allow"] = []
    app.config["METRICS_TOKEN"] = None
    assert client.get("/metrics", environ_base=LOCAL).status_code == 403
    assert client.get("/metrics", environ_base=LOCAL, headers={"Authorization": "Bearer "}).status_code == 403


def test_a_wrong_address_list_stops_the_start(database_url, tmp_path):
    from provider_admin import create_app

    with pytest.raises(ValueError, match="PROVIDER_ADMIN_METRICS_ALLOW"):
        create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url, "AUTO_MIGRATE": False,
                    "SECRET_KEY": "x", "METRICS_ALLOW": "10.0.0.0/33"})


def test_it_answers_before_the_first_user_exists(client):
    assert client.get("/metrics", environ_base=LOCAL).status_code == 200


def test_provider_status_is_the_databases(client, make_provider):
    make_provider("east", status="ready")
    make_provider("west", status="error", cordoned=True, cordon_reason="upgrade")
    make_provider("north")
    found = scrape(client)
    expected = {"east": "ready", "west": "error", "north": "pending"}
    for name, current in expected.items():
        for status in ("pending", "ready", "error"):
            assert of(found, "provider_admin_provider_status", provider=name, status=status) == (status == current)
    assert of(found, "provider_admin_provider_cordoned", provider="west") == 1
    assert of(found, "provider_admin_provider_cordoned", provider="east") == 0


def test_checks_are_counted_by_category_with_their_durations(client, kube_api, kube_provider):
    kube_api.deploy_marker("east", namespace="ws")
    east = kube_provider(kube_api, name="east", namespace="ws")
    west = kube_provider(kube_api, name="west", namespace="nowhere")  # not deployed: pending
    for checked in (east, east, west):
        check_now(checked)
    found = scrape(client)
    assert of(found, "provider_admin_checks_total", category="ready", trigger="manual") == 2
    assert of(found, "provider_admin_checks_total", category="not_deployed", trigger="manual") == 1
    assert of(found, "provider_admin_check_failures_total", category="not_deployed", trigger="manual") == 1
    assert of(found, "provider_admin_check_failures_total", category="ready", trigger="manual") is None
    ready = dict(category="ready", trigger="manual")
    assert of(found, "provider_admin_check_duration_seconds_count", **ready) == 2
    assert of(found, "provider_admin_check_duration_seconds_bucket", le="+Inf", **ready) == 2
    total = sum(c.duration_ms for c in db.session.scalars(db.select(ProviderCheck).filter_by(provider_id=east.id)))
    assert of(found, "provider_admin_check_duration_seconds_sum", **ready) == pytest.approx(total / 1000)
    buckets = [of(found, "provider_admin_check_duration_seconds_bucket", le=le, **ready)
               for le in [tallies._label(b) for b in tallies.BUCKETS] + ["+Inf"]]
    assert buckets == sorted(buckets)  # cumulative


def test_tallies_add_up_in_one_row_per_bucket(app_context):
    tallies.add([("ready", "scheduled", 20.0), ("ready", "scheduled", 24.0), ("tls", "scheduled", 7000.0),
                 ("ready", "scheduled", None)])
    tallies.add([("ready", "scheduled", 30.0)])
    db.session.commit()
    rows = {(t.category, t.le): (t.count, round(t.seconds, 3)) for t in db.session.scalars(db.select(CheckTally))}
    assert rows == {("ready", "0.025"): (3, 0.044), ("ready", "0.05"): (1, 0.03), ("tls", "10.0"): (1, 7.0)}


def test_lag_is_how_long_the_most_overdue_check_has_waited(client, make_provider):
    make_provider("east", next_check_at=utcnow() + timedelta(seconds=20))
    assert of(scrape(client), "provider_admin_check_lag_seconds") == 0
    make_provider("west", next_check_at=utcnow() - timedelta(seconds=90))
    assert 89 <= of(scrape(client), "provider_admin_check_lag_seconds") < 120


def test_requests_are_timed_by_route_not_by_path(client, actions, make_provider):
    actions.login()
    east = make_provider("east")
    before = of(scrape(client), "provider_admin_http_request_duration_seconds_count",
                route="/manage/providers/<int:provider_id>", method="GET", status="200") or 0
    for _ in range(3):
        assert client.get(f"/manage/providers/{east.id}").status_code == 200
    client.get("/no/such/page")
    found = scrape(client)
    assert of(found, "provider_admin_http_request_duration_seconds_count",
              route="/manage/providers/<int:provider_id>", method="GET", status="200") == before + 3
    assert of(found, "provider_admin_http_request_duration_seconds_count",
              route="(no route)", method="GET", status="404") >= 1
    routes = {dict(labels).get("route") for _, labels in found} - {None}
    assert not [r for r in routes if re.search(r"/\d+(/|$)", r)]  # rules, never paths with ids


def test_workspace_builds_are_counted_by_outcome(client, actions, org, provider):  # noqa: F811
    counted = lambda: of(scrape(client), "provider_admin_workspace_builds_total",  # noqa: E731
                         action="build", outcome="succeeded") or 0
    before = counted()
    actions.login("member", organizations=[org])
    workspace = created(actions, provider, org)
    assert wait_status(workspace.id, "running", "failed").status == "running"
    deadline = time.monotonic() + 10
    while counted() != before + 1:  # the build's thread counts it just after writing the status
        assert time.monotonic() < deadline, "the build was not counted"
        time.sleep(0.1)


def test_one_set_of_statuses_across_gunicorn_workers_and_a_scheduler(app_context, database_url, tmp_path,
                                                                     kube_api, kube_provider):
    """The production topology: two workers sharing PROMETHEUS_MULTIPROC_DIR and a scheduler
    process. Every scrape, whichever worker answers, gives the database's statuses, the
    scheduler's checks, and the requests of both workers summed."""
    kube_api.deploy_marker("east", namespace="ws")
    kube_provider(kube_api, name="east", namespace="ws")
    kube_provider(kube_api, name="west", namespace="gone")  # never deployed: stays pending
    folder = tmp_path / "multiproc"
    folder.mkdir()
    env = servers.environment(database_url, tmp_path / "instance", METRICS_ALLOW="127.0.0.1", CHECK_INTERVAL=1,
                              CHECK_TIMEOUT=1.0)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    scheduler = servers.scheduler(env)
    try:
        assert scheduler.stdout.readline().startswith("Checking providers")
        log = tmp_path / "access.log"
        with servers.gunicorn(env, log, workers=2) as url:
            deadline = time.monotonic() + 30
            while not _checked_twice_each():
                assert time.monotonic() < deadline, "the scheduler did not check both providers"
                time.sleep(0.2)
            scheduler.terminate()
            scheduler.wait(10)
            for _ in range(20):
                urllib.request.urlopen(url + "/login", timeout=10).read()
            scrapes = _scrapes_from_both_workers(url, log)
    finally:
        if scheduler.poll() is None:
            scheduler.kill()
    db.session.expire_all()
    truth = {p.name: p.status for p in db.session.scalars(db.select(Provider))}
    assert truth == {"east": "ready", "west": "pending"}
    checks = dict(db.session.execute(db.select(ProviderCheck.category, db.func.count())
                                     .group_by(ProviderCheck.category)).all())
    for found in scrapes:
        shown = {labels[0][1]: labels[1][1] for (name, labels), value in found.items()
                 if name == "provider_admin_provider_status" and value == 1}
        assert shown == truth
        assert {category: of(found, "provider_admin_checks_total", category=category, trigger="scheduled")
                for category in checks} == checks
        assert _requests_to(found, "/login") >= 20  # both workers' in every answer (and gunicorn's start probes)
    assert len({_requests_to(found, "/login") for found in scrapes}) == 1
    beats = {(b.host, str(b.pid), b.run_id): b.last_tick_at.timestamp()
             for b in db.session.scalars(db.select(SchedulerHeartbeat))}
    assert beats and all({labels_and_value for labels_and_value in _ticks_of(found)} == set(beats.items())
                         for found in scrapes)


def _scrapes_from_both_workers(url: str, log) -> list[dict]:
    """Scrapes, four at a time so that a busy worker leaves one to the other, until both
    workers have answered some (a sync worker takes what it can accept first)."""
    from concurrent.futures import ThreadPoolExecutor

    def scrape_once(_):
        return samples(urllib.request.urlopen(url + "/metrics", timeout=10).read().decode())

    found, deadline = [], time.monotonic() + 30
    with ThreadPoolExecutor(4) as pool:
        while True:
            found += pool.map(scrape_once, range(4))
            workers = {line.split()[0] for line in log.read_text().splitlines() if line.endswith(" /metrics")}
            if len(workers) == 2 and len(found) >= 12:
                return found
            assert time.monotonic() < deadline, f"only {workers} answered {len(found)} scrapes"


def _ticks_of(found: dict):
    for (name, labels), value in found.items():
        if name == "provider_admin_scheduler_last_tick_timestamp_seconds":
            labels = dict(labels)
            yield (labels["host"], labels["pid"], labels["run"]), value


def _requests_to(found: dict, route: str) -> float:
    return sum(value for (name, labels), value in found.items()
               if name == "provider_admin_http_request_duration_seconds_count" and dict(labels)["route"] == route)


def _checked_twice_each() -> bool:
    db.session.expire_all()
    counts = db.session.execute(db.select(ProviderCheck.provider_id, db.func.count())
                                .group_by(ProviderCheck.provider_id)).all()
    return len(counts) == 2 and all(n >= 2 for _, n in counts)


def test_names_follow_the_naming_guide_and_the_alert_rules_use_them(client, make_provider, kube_api, kube_provider):
    from pathlib import Path

    import yaml

    kube_api.deploy_marker("east", namespace="ws")
    check_now(kube_provider(kube_api, name="east", namespace="ws"))
    text = client.get("/metrics", environ_base=LOCAL).text
    declared = dict(re.findall(r"^# TYPE (\S+) (\w+)$", text, re.M))
    assert set(declared) == {
        "provider_admin_provider_status", "provider_admin_provider_cordoned", "provider_admin_checks_total",
        "provider_admin_check_failures_total", "provider_admin_check_duration_seconds",
        "provider_admin_check_lag_seconds", "provider_admin_scheduler_last_tick_timestamp_seconds",
        "provider_admin_workspace_builds_total",
        "provider_admin_http_request_duration_seconds"}
    for name, kind in declared.items():
        assert name.startswith("provider_admin_") and name == name.lower()
        assert (kind == "counter") == name.endswith("_total"), name
        assert kind != "histogram" or name.endswith("_seconds"), name  # base units
    rules = yaml.safe_load((Path(__file__).resolve().parents[1] / "deploy/prometheus/alerts.yml").read_text())
    used = {name for group in rules["groups"] for rule in group["rules"]
            for name in re.findall(r"provider_admin_\w+", rule["expr"])}
    known = set(declared) | {f"{n}_{part}" for n, k in declared.items() if k == "histogram"
                             for part in ("bucket", "sum", "count")}
    assert used and used <= known, used - known
    assert all(rule["labels"]["severity"] and rule["annotations"]["summary"] for g in rules["groups"]
               for rule in g["rules"])
