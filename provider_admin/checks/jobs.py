"""A check job: the plain values a check needs, so that it can run in any thread."""
import time
from dataclasses import dataclass

from flask import current_app, has_request_context
from flask_login import current_user
from sqlalchemy.exc import IntegrityError, InvalidRequestError
from sqlalchemy.orm.exc import ObjectDeletedError

from .. import kube
from ..extensions import db
from ..models import Provider
from ..providers.connection import connection_for


@dataclass(frozen=True)
class CheckJob:
    provider_id: int
    generation: int  # the provider's check_generation when the job was made
    provider_name: str
    provider_uid: str
    connection: kube.Connection | None
    connection_error: str | None
    storage_class: str | None
    service_account: str | None
    needs_service_accounts: bool
    needs_services: bool
    full: bool


def job_for(provider: Provider, *, full: bool) -> CheckJob:
    """The job for a Provider or a claimed row (see `claims.CLAIMED_COLUMNS`)."""
    connection, error = None, None
    try:
        connection = connection_for(provider)
    except (ValueError, kube.NotInClusterError) as exc:
        error = str(exc)
    return CheckJob(
        provider_id=provider.id,
        generation=provider.check_generation,
        provider_name=provider.name,
        provider_uid=provider.uid,
        connection=connection,
        connection_error=error,
        storage_class=provider.storage_class,
        # With annotations each workspace gets its own account: the plain one is not used.
        service_account=None if provider.service_account_annotations else provider.service_account,
        needs_service_accounts=bool(provider.service_account_annotations),
        needs_services=bool(provider.external_ssh),
        full=full,
    )


def run(job: CheckJob, timeout: float) -> tuple[kube.CheckResult, float]:
    """Run the check (never raises); returns the result and its duration in ms."""
    started = time.monotonic()
    if job.connection is None:
        result = kube.CheckResult(ok=False, category="error", message=job.connection_error or "")
    else:
        result = kube.check(
            job.connection,
            provider_name=job.provider_name,
            provider_uid=job.provider_uid,
            storage_class=job.storage_class,
            service_account=job.service_account,
            needs_service_accounts=job.needs_service_accounts,
            needs_services=job.needs_services,
            full=job.full,
            timeout=timeout,
        )
    return result, (time.monotonic() - started) * 1000


def check_now(provider: Provider, trigger: str = "manual") -> kube.CheckResult | None:
    """Check one provider fully at once and apply the result at once (no threshold).

    Unlike the scheduled checks, whose results one thread writes in batches, the result
    is written here and now: the admin is waiting for it, and the provider is loaded again
    with it. None when the provider was deleted before its result could be written (there is
    nothing left to apply it to); the provider is then expired, so reading it says so.
    """
    from .results import apply_result

    provider_id = provider.id
    try:
        job = job_for(provider, full=True)
    except ObjectDeletedError:
        db.session.rollback()
        return None
    result, duration = run(job, current_app.config["CHECK_TIMEOUT"])
    try:
        applied = apply_result(provider_id, result, trigger=trigger, full=True, duration_ms=duration,
                               generation=job.generation, checked_by=_asked_by())
        db.session.commit()
    except IntegrityError:  # deleted between reading it and writing its history
        db.session.rollback()
        return None
    if not applied:
        db.session.expire(provider)
        return None
    try:
        db.session.refresh(provider)  # loaded again: the caller shows it, also after the session ends
    except InvalidRequestError:  # deleted right after its result was written
        db.session.expire(provider)
    return result


def _asked_by() -> str | None:
    """The username of whoever asked, on a page or through the API; None from the command line."""
    if not has_request_context() or not current_user.is_authenticated:
        return None
    return current_user.username
