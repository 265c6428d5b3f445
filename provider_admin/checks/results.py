"""Turn check results into the providers' status, history and next due time.

Health fields are written with plain UPDATE statements, not through the ORM, so that a
check never bumps the optimistic-lock version of an admin's open edit form.

Results are written in batches, whatever their number in four statements: a SELECT of the
providers' current status, one UPDATE executed for each result, one INSERT of the history
rows and one DELETE that trims the history of the providers in the batch.

A result applies only to the settings it was computed for: the UPDATE is a compare-and-set
on the provider's check generation, which every change of what a check depends on bumps
(see `models.CHECKED_FIELDS`). A result that lost the race, because an admin saved new
settings while it was under way, changes nothing but the history, where it is marked
superseded. The INSERT reads the generation after the UPDATE, whose row lock (PostgreSQL) or
write lock (SQLite) it runs under, so the history says exactly which results applied.

A scheduled result is dropped when the SELECT finds another scheduler's live claim on its
provider: a result kept past its lease (the database was away), whose provider another
scheduler took over. (The sweeper stops sending a result again shortly before its lease
ends; this is the database's word on it.) Each result carries a unique key into the
history, so a batch sent again after a commit whose answer was lost (the database went away
meanwhile) skips the results that commit wrote.
"""
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from flask import current_app
from sqlalchemy import Integer, bindparam, delete, func, insert, select, update

from .. import kube
from ..database import is_unreachable
from ..extensions import db
from ..metrics import tallies
from ..models import Provider, ProviderCheck, Status, utcnow
from ..notifications import events as notify

log = logging.getLogger(__name__)
providers = Provider.__table__
checks = ProviderCheck.__table__

# The health a provider's row shows. The database bumps display_version when any of it
# changes, whoever writes it (migrations/versions/0010_display_version_triggers.py).
SHOWN = ("status", "status_category", "status_message", "status_warnings", "kube_version")


@dataclass(frozen=True)
class Outcome:
    """A finished check, waiting to be written."""

    provider_id: int
    result: kube.CheckResult
    trigger: str
    full: bool
    duration_ms: float | None = None
    worker: str | None = None
    checked_by: str | None = None  # who asked for a check that was not scheduled
    generation: int = field(kw_only=True)  # the provider's check_generation it was computed for
    key: str | None = field(default=None, kw_only=True)  # unique in the history (see new_key)
    # time.monotonic() after which a scheduled result is no longer sent again (its lease ends)
    writable_until: float = field(default=float("inf"), kw_only=True)


def new_key() -> str:
    """A result's key: a batch sent again skips the results whose key is in the history."""
    return uuid.uuid4().hex


def _param(column):
    return bindparam(f"p_{column.name}", type_=column.type)


def _unless_null(column):
    """Set from the parameter, or keep the column's value when the parameter is NULL."""
    return func.coalesce(_param(column), column)


# Every result sets the same columns, so one statement serves a whole batch.
_UPDATE_HEALTH = (
    update(providers)
    .where(providers.c.id == _param(providers.c.id),
           providers.c.check_generation == _param(providers.c.check_generation))
    .values({
        **{name: _param(providers.c[name]) for name in SHOWN + (
            "consecutive_failures", "last_checked_at", "next_check_at")},
        "claimed_by": None,
        "claimed_until": None,
        # Read from the very token checked: NULL when it has no expiry (or is not a JWT).
        "token_expires_at": _param(providers.c.token_expires_at),
        "last_permissions_check_at": _unless_null(providers.c.last_permissions_check_at),
        "last_ready_at": _unless_null(providers.c.last_ready_at),
    })
)


_HISTORY_COLUMNS = ("provider_id", "checked_at", "ok", "category", "message", "trigger",
                    "duration_ms", "worker", "checked_by", "result_key")
_INSERT_HISTORY = insert(checks).values({
    **{name: bindparam(f"h_{name}", type_=checks.c[name].type) for name in _HISTORY_COLUMNS},
    "superseded": select(providers.c.check_generation != bindparam("h_generation", type_=Integer))
    .where(providers.c.id == bindparam("h_provider_id")).scalar_subquery(),
})


def apply_result(provider_id: int, result: kube.CheckResult, *, trigger: str, full: bool,
                 generation: int, duration_ms: float | None = None,
                 worker: str | None = None, checked_by: str | None = None) -> None:
    """Record one result in the current transaction (the caller commits)."""
    apply_results([Outcome(provider_id, result, trigger, full, duration_ms, worker, checked_by,
                           generation=generation)])


def apply_results(outcomes: Sequence[Outcome]) -> list[Outcome]:
    """Record results in the current transaction; returns those of providers that still exist.

    A scheduled failure of a Ready provider counts toward the failure threshold.
    """
    config = current_app.config
    ids = sorted({o.provider_id for o in outcomes})
    current = {row.id: row._asdict() for row in db.session.execute(
        select(providers.c.id, providers.c.consecutive_failures, providers.c.last_checked_at,
               providers.c.check_generation, providers.c.claimed_by, providers.c.claimed_until,
               *(providers.c[name] for name in SHOWN))
        .where(providers.c.id.in_(ids)))}
    now = utcnow()
    changes, history, applied, told = [], [], [], []
    for outcome in outcomes:
        row = current.get(outcome.provider_id)
        if row is None:  # deleted while it was being checked
            continue
        if _taken_over(row, outcome, now):
            log.warning("the check result of provider %s came after its lease: another scheduler "
                        "took it over, the result is dropped", outcome.provider_id)
            continue
        if outcome.generation == row["check_generation"]:
            values = _new_values(row, outcome, now, config)
            told.append(notify.StatusChange(outcome.provider_id, row["status"], values["status"], outcome.generation))
            row.update(values)  # a second result for the same provider follows the first
            changes.append({f"p_{name}": value for name, value in values.items()})
        result = outcome.result
        history.append({"h_provider_id": outcome.provider_id, "h_checked_at": now,
                        "h_ok": result.ok, "h_category": result.category,
                        "h_message": result.message, "h_trigger": outcome.trigger,
                        "h_duration_ms": outcome.duration_ms, "h_worker": outcome.worker,
                        "h_checked_by": outcome.checked_by, "h_result_key": outcome.key,
                        "h_generation": outcome.generation})
        applied.append(outcome)
    if applied:
        if changes:
            db.session.execute(_UPDATE_HEALTH, changes)
            notify.status_changes(told)  # in this transaction: told once the change is written
        db.session.execute(_INSERT_HISTORY, history)
        tallies.add((o.result.category, o.trigger, o.duration_ms) for o in applied)  # for /metrics
        _trim_history(sorted({o.provider_id for o in applied}), config["CHECK_HISTORY"])
    return applied


def _taken_over(row: dict, outcome: Outcome, now) -> bool:
    """Another scheduler holds a live claim on the provider of this scheduled result."""
    return (outcome.trigger == "scheduled" and row["claimed_by"] is not None
            and row["claimed_by"] != outcome.worker and row["claimed_until"] is not None
            and row["claimed_until"] > now)


def save_results(outcomes: Sequence[Outcome], *, again: bool = False) -> list[Outcome]:
    """Write a batch of results in one transaction; returns those written.

    When the batch fails, each result is tried on its own, so one bad result does not lose
    the others. A result that still fails is logged and dropped: its provider stays
    claimed until its lease ends, and is then checked again. When the database is away,
    nothing is dropped: the error is raised for the caller to send the batch `again` later,
    which skips the results already in the history.
    """
    try:
        if again:
            outcomes = _not_written(outcomes)
            if not outcomes:
                db.session.rollback()
                return []
        applied = apply_results(outcomes)
        db.session.commit()
        return applied
    except Exception as error:
        db.session.rollback()
        if is_unreachable(error):
            raise
        if len(outcomes) == 1:
            log.exception("could not write the check result of provider %s",
                          outcomes[0].provider_id)
            return []
        log.warning("could not write %d check results together; writing them one by one",
                    len(outcomes), exc_info=True)
    written = []
    for outcome in outcomes:
        written += save_results([outcome], again=again)
    return written


def _not_written(outcomes: Sequence[Outcome]) -> list[Outcome]:
    """The results whose key is not in the history yet."""
    written = set(db.session.scalars(select(checks.c.result_key).where(
        checks.c.result_key.in_([o.key for o in outcomes if o.key]))))
    if written:
        log.info("%d check results were written before the database went away", len(written))
    return [o for o in outcomes if o.key not in written]


def _new_values(row: dict, outcome: Outcome, now, config) -> dict:
    result = outcome.result
    values = {"status_warnings": result.warnings or None,
              "kube_version": result.kube_version or row["kube_version"],
              **_status_values(row, result, outcome.trigger, config)}
    failures = values["consecutive_failures"]
    # Back off from a failing cluster, not from one waiting to be deployed: after
    # `kubectl apply` it turns Ready within one interval.
    waiting = failures == 0 or values["status"] == Status.PENDING.value
    wait = config["CHECK_INTERVAL"] if waiting else min(
        config["CHECK_INTERVAL"] * 2 ** (failures - 1), config["CHECK_BACKOFF_MAX"])
    return {
        **values,
        "id": outcome.provider_id,
        "check_generation": outcome.generation,
        "last_checked_at": now,
        "next_check_at": now + timedelta(seconds=wait),
        "token_expires_at": result.token_expires_at,
        # NULL keeps the stored value (see _unless_null).
        "last_permissions_check_at": now if outcome.full else None,
        "last_ready_at": now if values["status"] == Status.READY.value else None,
    }


def _status_values(row: dict, result: kube.CheckResult, trigger: str, config) -> dict:
    if result.ok:  # its warnings are shown from status_warnings, once
        return {"status": Status.READY.value, "status_category": result.category,
                "status_message": None, "consecutive_failures": 0}
    failures = row["consecutive_failures"] + 1
    if result.category == "not_deployed":
        return {"status": Status.PENDING.value, "status_category": result.category,
                "status_message": result.message, "consecutive_failures": failures}
    threshold = config["CHECK_FAILURE_THRESHOLD"]
    if row["status"] == Status.READY.value and trigger == "scheduled" and failures < threshold:
        # One failed scheduled check of a Ready provider is not yet an outage.
        return {"status": Status.READY.value, "status_category": row["status_category"],
                "status_message": f"Last check failed ({failures} of {threshold} before Error): "
                                  f"{result.message}",
                "consecutive_failures": failures}
    return {"status": Status.ERROR.value, "status_category": result.category,
            "status_message": result.message, "consecutive_failures": failures}


def _trim_history(provider_ids: list[int], keep: int) -> None:
    """Keep the newest `keep` checks of each of these providers, in one statement."""
    newest_first = func.row_number().over(partition_by=checks.c.provider_id,
                                          order_by=checks.c.id.desc())
    ranked = (select(checks.c.id, newest_first.label("rank"))
              .where(checks.c.provider_id.in_(provider_ids)).subquery())
    db.session.execute(delete(checks).where(
        checks.c.id.in_(select(ranked.c.id).where(ranked.c.rank > keep))))
