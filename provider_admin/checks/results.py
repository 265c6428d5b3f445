"""Turn a check result into the provider's status, history and next due time.

Health fields are written with plain UPDATE statements, not through the ORM, so that a
check never bumps the optimistic-lock version of an admin's open edit form.
"""
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, select, update

from .. import kube
from ..extensions import db
from ..models import Provider, ProviderCheck, Status, utcnow

# Re-render a row at least this often so its "last checked" time stays close to the truth.
STALE_DISPLAY = timedelta(seconds=120)


def apply_result(provider_id: int, result: kube.CheckResult, *, trigger: str, full: bool,
                 duration_ms: float | None = None, worker: str | None = None) -> None:
    """Record the result; a scheduled failure of a Ready provider counts toward the threshold."""
    config = current_app.config
    row = db.session.execute(
        select(Provider.status, Provider.status_category, Provider.status_message,
               Provider.status_warnings, Provider.kube_version, Provider.consecutive_failures,
               Provider.last_checked_at, Provider.display_version)
        .where(Provider.id == provider_id)
    ).one_or_none()
    if row is None:  # deleted while it was being checked
        return
    now = utcnow()
    values = {
        "last_checked_at": now,
        "claimed_by": None,
        "claimed_until": None,
        "status_warnings": result.warnings or None,
        "kube_version": result.kube_version or row.kube_version,
    }
    if result.token_expires_at is not None:
        values["token_expires_at"] = result.token_expires_at
    if full:
        values["last_permissions_check_at"] = now
    values.update(_status_values(row, result, trigger, config))
    failures = values["consecutive_failures"]
    wait = config["CHECK_INTERVAL"] if failures == 0 else min(
        config["CHECK_INTERVAL"] * 2 ** (failures - 1), config["CHECK_BACKOFF_MAX"])
    values["next_check_at"] = now + timedelta(seconds=wait)
    if values["status"] == Status.READY.value:
        values["last_ready_at"] = now
    shown = (row.status, row.status_category, row.status_message, row.status_warnings, row.kube_version)
    new = (values["status"], values["status_category"], values["status_message"],
           values["status_warnings"], values["kube_version"])
    if shown != new or row.last_checked_at is None or now - row.last_checked_at > STALE_DISPLAY:
        values["display_version"] = row.display_version + 1
    db.session.execute(update(Provider).where(Provider.id == provider_id).values(**values))
    db.session.add(ProviderCheck(provider_id=provider_id, checked_at=now, ok=result.ok,
                                 category=result.category, message=result.message,
                                 trigger=trigger, duration_ms=duration_ms, worker=worker))
    _trim_history(provider_id, config["CHECK_HISTORY"])


def _status_values(row, result: kube.CheckResult, trigger: str, config) -> dict:
    if result.ok:
        message = "; ".join(result.warnings) if result.warnings else None
        return {"status": Status.READY.value, "status_category": result.category,
                "status_message": message, "consecutive_failures": 0}
    failures = row.consecutive_failures + 1
    if result.category == "not_deployed":
        return {"status": Status.PENDING.value, "status_category": result.category,
                "status_message": result.message, "consecutive_failures": failures}
    threshold = config["CHECK_FAILURE_THRESHOLD"]
    if row.status == Status.READY.value and trigger == "scheduled" and failures < threshold:
        # One failed scheduled check of a Ready provider is not yet an outage.
        return {"status": Status.READY.value, "status_category": row.status_category,
                "status_message": f"Last check failed ({failures} of {threshold} before Error): "
                                  f"{result.message}",
                "consecutive_failures": failures}
    return {"status": Status.ERROR.value, "status_category": result.category,
            "status_message": result.message, "consecutive_failures": failures}


def _trim_history(provider_id: int, keep: int) -> None:
    cutoff = db.session.scalar(
        select(ProviderCheck.id).where(ProviderCheck.provider_id == provider_id)
        .order_by(ProviderCheck.id.desc()).offset(keep).limit(1)
    )
    if cutoff is not None:
        db.session.execute(delete(ProviderCheck).where(
            ProviderCheck.provider_id == provider_id, ProviderCheck.id <= cutoff))
