"""Claiming due providers in the database, so several schedulers share the work safely.

A claim is a lease: `claimed_by` and `claimed_until`. The claim also moves `next_check_at`
one interval ahead, so no other scheduler takes the provider again in this interval even
after the claim is released. A scheduler that dies leaves claims that simply expire.
"""
from datetime import timedelta

from sqlalchemy import or_, select, update

from ..extensions import db
from ..models import Provider, Status, utcnow


def claim_due(worker: str, limit: int, *, interval: float, lease: float,
              permissions_every: float) -> list[tuple[Provider, bool]]:
    """Claim up to `limit` due providers; returns each with whether it needs a full check."""
    if limit <= 0:
        return []
    now = utcnow()
    query = (
        select(Provider)
        .where(or_(Provider.next_check_at.is_(None), Provider.next_check_at <= now))
        .where(or_(Provider.claimed_until.is_(None), Provider.claimed_until < now))
        .order_by(Provider.next_check_at.is_not(None), Provider.next_check_at, Provider.id)
        .limit(limit)
        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite serializes writers anyway
    )
    providers = list(db.session.scalars(query))
    claimed = []
    for provider in providers:
        # The guarded UPDATE makes the claim safe where FOR UPDATE is not available.
        taken = db.session.execute(
            update(Provider)
            .where(Provider.id == provider.id)
            .where(or_(Provider.claimed_until.is_(None), Provider.claimed_until < now))
            .values(claimed_by=worker, claimed_until=now + timedelta(seconds=lease),
                    next_check_at=now + timedelta(seconds=interval))
            .execution_options(synchronize_session=False)
        ).rowcount
        if taken:
            full = (provider.status != Status.READY.value
                    or provider.last_permissions_check_at is None
                    or now - provider.last_permissions_check_at > timedelta(seconds=permissions_every))
            claimed.append((provider, full))
    db.session.commit()
    return claimed
