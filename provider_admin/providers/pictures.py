"""A provider's recent checks as pictures, drawn on the server as SVG (no chart library): an
uptime bar with one cell per check, coloured by its result, and a sparkline of how long each
check took. Both say in words what they show, for screen readers and on hover."""
from dataclasses import dataclass
from statistics import median

from flask import current_app
from sqlalchemy import select

from ..extensions import db
from ..kube.errors import NOT_DEPLOYED
from ..models import Provider, ProviderCheck
from . import bp

CELL, GAP, BAR_HEIGHT = 6, 2, 24  # an uptime cell and the space after it, in SVG units
SPARK_WIDTH, SPARK_HEIGHT, SPARK_PAD = 240, 40, 3


@dataclass(frozen=True)
class Cell:
    x: int
    kind: str  # ok, pending (not deployed yet), failed, superseded
    label: str


@dataclass(frozen=True)
class Uptime:
    cells: list[Cell]
    width: int
    summary: str


@dataclass(frozen=True)
class Sparkline:
    points: str  # the polyline's "x,y x,y ..."
    last: tuple[float, float]  # where the latest check is drawn
    summary: str


def recent_checks(provider: Provider) -> list[ProviderCheck]:
    """The history kept for the provider (CHECK_HISTORY checks), newest first."""
    return list(db.session.scalars(
        select(ProviderCheck).filter_by(provider_id=provider.id)
        .order_by(ProviderCheck.checked_at.desc(), ProviderCheck.id.desc())
        .limit(current_app.config["CHECK_HISTORY"])))


def kind_of(check: ProviderCheck) -> str:
    if check.superseded:
        return "superseded"
    if check.ok:
        return "ok"
    return "pending" if check.category == NOT_DEPLOYED else "failed"


def describe(check: ProviderCheck) -> str:
    when = check.checked_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    took = f", {check.duration_ms:.0f} ms" if check.duration_ms is not None else ""
    result = "OK" if check.ok else check.category.replace("_", " ")
    superseded = " (superseded: computed for settings saved over since)" if check.superseded else ""
    message = f": {check.message}" if check.message and not check.ok else ""
    return f"{when} · {check.trigger} check, {result}{took}{superseded}{message}"


def uptime(checks: list[ProviderCheck]) -> Uptime:
    """Oldest on the left, like a timeline; `checks` newest first, as recent_checks gives them."""
    ordered = list(reversed(checks))
    cells = [Cell(i * (CELL + GAP), kind_of(c), describe(c)) for i, c in enumerate(ordered)]
    applied = [c for c in cells if c.kind != "superseded"]
    ok = sum(c.kind == "ok" for c in applied)
    share = f"{100 * ok / len(applied):.0f}%" if applied else "no result applied"
    summary = (f"Last {len(cells)} checks, oldest first: {ok} OK, {len(applied) - ok} not OK "
               f"({share} OK)" + (f", {len(cells) - len(applied)} superseded" if len(applied) < len(cells) else ""))
    return Uptime(cells, max(len(cells) * (CELL + GAP) - GAP, 0), summary)


def sparkline(checks: list[ProviderCheck]) -> Sparkline | None:
    """How long each check took, oldest on the left, scaled from 0 to the slowest; None with
    fewer than two timed checks."""
    timed = [c.duration_ms for c in reversed(checks) if c.duration_ms is not None]
    if len(timed) < 2:
        return None
    top = max(timed) or 1.0
    step = (SPARK_WIDTH - 2 * SPARK_PAD) / (len(timed) - 1)
    span = SPARK_HEIGHT - 2 * SPARK_PAD
    xy = [(round(SPARK_PAD + i * step, 1), round(SPARK_PAD + span * (1 - value / top), 1))
          for i, value in enumerate(timed)]
    summary = (f"Check duration over the last {len(timed)} checks: latest {timed[-1]:.0f} ms, "
               f"median {median(timed):.0f} ms, slowest {max(timed):.0f} ms")
    return Sparkline(" ".join(f"{x},{y}" for x, y in xy), xy[-1], summary)


@bp.app_template_global()
def check_pictures(provider: Provider) -> dict:
    """What the provider page's pictures draw, from one query."""
    checks = recent_checks(provider)
    return {"uptime": uptime(checks), "sparkline": sparkline(checks)}
