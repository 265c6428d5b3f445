"""Claiming due providers in the database, so several schedulers share the work safely.

A claim is a lease: `claimed_by` and `claimed_until`. The claim also moves `next_check_at`
one interval ahead, so no other scheduler takes the provider again in this interval even
after the claim is released. A scheduler that dies leaves claims that simply expire.

The claim is one statement, `UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING …`, and its
UPDATE repeats the due condition, so it is a compare-and-set: a provider is taken only
while it is due and unclaimed, however many ticks or processes claim at once. PostgreSQL
also skips the rows another claim has locked; SQLite has no row locks, but runs the whole
statement under its one write lock.
"""
from datetime import timedelta

from sqlalchemy import Row, or_, select, update

from ..extensions import db
from ..models import Provider, Status, utcnow

providers = Provider.__table__

# What a check job needs: the connection, what to check, whether it is a full check, and the
# generation of the settings it is computed for.
CLAIMED_COLUMNS = (
    providers.c.id, providers.c.name, providers.c.uid, providers.c.namespace, providers.c.cluster_address,
    providers.c.ca_cert, providers.c.credentials_encrypted, providers.c.is_builtin,
    providers.c.storage_class, providers.c.service_account,
    providers.c.service_account_annotations, providers.c.external_ssh, providers.c.status,
    providers.c.last_permissions_check_at, providers.c.check_generation,
)


def claim_due(worker: str, limit: int, *, interval: float, lease: float,
              permissions_every: float) -> list[tuple[Row, bool]]:
    """Claim up to `limit` due providers; returns each row with whether it needs a full check."""
    if limit <= 0:
        return []
    now = utcnow()
    due = or_(providers.c.next_check_at.is_(None), providers.c.next_check_at <= now)
    free = or_(providers.c.claimed_until.is_(None), providers.c.claimed_until < now)
    # Materialized: picked once. As a plain IN (subquery), PostgreSQL may run the LIMIT
    # subquery again for each row it updates, and then claims far more than `limit`.
    oldest_first = (
        select(providers.c.id).where(due, free)
        .order_by(providers.c.next_check_at.is_not(None), providers.c.next_check_at,
                  providers.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite renders no FOR UPDATE
        .cte("oldest_first").prefix_with("MATERIALIZED")
    )
    rows = db.session.execute(
        update(providers)
        .where(providers.c.id.in_(select(oldest_first.c.id)), due, free)
        .values(claimed_by=worker, claimed_until=now + timedelta(seconds=lease),
                next_check_at=now + timedelta(seconds=interval))
        .returning(*CLAIMED_COLUMNS)
    ).all()
    db.session.commit()
    permissions_due = now - timedelta(seconds=permissions_every)
    return [(row, row.status != Status.READY.value or row.last_permissions_check_at is None
             or row.last_permissions_check_at < permissions_due) for row in rows]


def hand_back(worker: str, ids: list[int] | None = None) -> int:
    """Release the claims `worker` holds (on these providers, or all) and make them due now,
    so another scheduler takes them at its next tick instead of after the lease. Returns how
    many were released."""
    mine = providers.c.claimed_by == worker
    where = mine if ids is None else mine & providers.c.id.in_(ids)
    released = db.session.execute(update(providers).where(where).values(
        claimed_by=None, claimed_until=None, next_check_at=utcnow())).rowcount
    db.session.commit()
    return released
