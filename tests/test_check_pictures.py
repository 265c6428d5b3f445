"""A provider's recent checks as pictures: the uptime bar (one cell per check, coloured by its
result, its words on hover and for screen readers) and the duration sparkline, drawn as SVG
on the server and sent again by the badge poll."""
import re
from datetime import timedelta

import pytest

from provider_admin.extensions import db
from provider_admin.models import ProviderCheck, utcnow
from provider_admin.providers import pictures

from .test_status_poll import known_of, poll_of, post_poll

HOSTILE = '<script>alert("x")</script> & <b>'


@pytest.fixture
def admin(actions):
    return actions.login()


def record(provider, results):
    """Checks of `provider`, one a minute, oldest first: (ok, category, duration_ms[, superseded])."""
    start = utcnow() - timedelta(minutes=len(results))
    for i, (ok, category, duration, *superseded) in enumerate(results):
        db.session.add(ProviderCheck(provider_id=provider.id, checked_at=start + timedelta(minutes=i), ok=ok,
                                     category=category, message="" if ok else f"{category} {HOSTILE}",
                                     trigger="scheduled", duration_ms=duration, superseded=bool(superseded)))
    db.session.commit()


def test_the_uptime_bar_has_a_cell_per_check_oldest_first(make_provider):
    east = make_provider("east")
    record(east, [(True, "ready", 100), (False, "unreachable", 5000), (False, "not_deployed", 80),
                  (True, "ready", 120, True), (True, "ready", 90)])
    bar = pictures.uptime(pictures.recent_checks(east))
    assert [c.kind for c in bar.cells] == ["ok", "failed", "pending", "superseded", "ok"]
    assert [c.x for c in bar.cells] == [0, 8, 16, 24, 32] and bar.width == 38
    assert bar.cells[1].label.endswith(f"scheduled check, unreachable, 5000 ms: unreachable {HOSTILE}")
    assert bar.summary == "Last 5 checks, oldest first: 2 OK, 2 not OK (50% OK), 1 superseded"


def test_the_bar_holds_the_kept_history_only(app, make_provider):
    east = make_provider("east")
    record(east, [(True, "ready", 10)] * (app.config["CHECK_HISTORY"] + 7))
    assert len(pictures.uptime(pictures.recent_checks(east)).cells) == app.config["CHECK_HISTORY"]


def test_the_sparkline_scales_from_zero_to_the_slowest(make_provider):
    east = make_provider("east")
    record(east, [(True, "ready", 0), (True, "ready", 50), (False, "unreachable", None), (True, "ready", 100)])
    line = pictures.sparkline(pictures.recent_checks(east))
    points = [tuple(map(float, p.split(","))) for p in line.points.split()]
    assert points == [(3.0, 37.0), (120.0, 20.0), (237.0, 3.0)] and line.last == (237.0, 3.0)
    assert line.summary == "Check duration over the last 3 checks: latest 100 ms, median 50 ms, slowest 100 ms"


def test_no_sparkline_without_two_timed_checks(make_provider):
    east = make_provider("east")
    assert pictures.sparkline([]) is None
    record(east, [(True, "ready", 30)])
    assert pictures.sparkline(pictures.recent_checks(east)) is None


def test_the_provider_page_draws_them_with_the_messages_escaped(admin, client, make_provider):
    east = make_provider("east")
    record(east, [(True, "ready", 100), (False, "forbidden", 300), (True, "ready", 200)])
    page = client.get(f"/manage/providers/{east.id}").text
    figure = page[page.index(f'id="provider-pictures-{east.id}"'):]
    figure = figure[:figure.index("</div>")]
    assert re.findall(r'<rect class="cell-(\w+)"', figure) == ["ok", "failed", "ok"]
    assert "<script>" not in figure and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;" in figure
    assert "Last 3 checks, oldest first: 2 OK, 1 not OK (67% OK)" in figure
    assert "latest 200 ms, median 200 ms, slowest 300 ms" in figure
    hidden = re.search(r'<ol class="visually-hidden">(.*?)</ol>', figure).group(1)
    assert hidden.count("<li>") == 3 and hidden.index("forbidden") > hidden.index("200 ms")  # newest first
    assert " style=" not in page  # the CSP allows no inline style


def test_a_provider_never_checked_draws_nothing(admin, client, make_provider):
    east = make_provider("east")
    page = client.get(f"/manage/providers/{east.id}").text
    assert f'id="provider-pictures-{east.id}"' in page and "<svg" not in page.split("Check history")[0].split(
        f'id="provider-pictures-{east.id}"')[1]


def test_the_poll_sends_the_pictures_again_with_the_status(admin, actions, client, make_provider):
    east = make_provider("east")
    record(east, [(True, "ready", 100)])
    page = client.get(f"/manage/providers/{east.id}").text
    url, fp = poll_of(page)
    record(east, [(False, "unreachable", 900)])
    east.status, east.status_message = "error", "unreachable"  # what the check wrote
    db.session.commit()
    answer = post_poll(actions, url, fp, known_of(page) or f"{east.id}.0").text
    assert f'id="provider-pictures-{east.id}" class="check-pictures" hx-swap-oob="true"' in answer
    assert re.findall(r'<rect class="cell-(\w+)"', answer) == ["ok", "failed"]
