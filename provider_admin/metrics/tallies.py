"""Health-check counts in the database (CheckTally): added in the transaction that records
the results, so a count is never lost or doubled whichever scheduler process checked, and
read back as Prometheus counters and a histogram by any web process."""
from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from ..extensions import db
from ..models import CheckTally

# Upper bounds of the duration buckets, in seconds: a healthy cluster answers in tens of
# milliseconds, a check that times out takes CHECK_TIMEOUT (5 s by default) per call.
BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
INF = "+Inf"


def bucket_of(seconds: float) -> str:
    return next((_label(bound) for bound in BUCKETS if seconds <= bound), INF)


def _label(bound: float) -> str:
    return repr(float(bound))  # as Prometheus writes `le`: 0.025, 1.0, 10.0


def add(results: Iterable[tuple[str, str, float | None]]) -> None:
    """Count (category, trigger, duration_ms) results in the current transaction, in one
    statement. Rows are written in key order, so two schedulers adding at once wait for each
    other, never deadlock."""
    sums: dict[tuple[str, str, str], list] = defaultdict(lambda: [0, 0.0])
    for category, trigger, duration_ms in results:
        seconds = max(duration_ms or 0.0, 0.0) / 1000
        row = sums[(category, trigger, bucket_of(seconds))]
        row[0] += 1
        row[1] += seconds
    if not sums:
        return
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    table = CheckTally.__table__
    statement = dialect.insert(table).values(category=bindparam("t_category"), trigger=bindparam("t_trigger"),
                                             le=bindparam("t_le"), count=bindparam("t_count"),
                                             seconds=bindparam("t_seconds"))
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.category, table.c.trigger, table.c.le],
        set_={"count": table.c.count + statement.excluded.count,
              "seconds": table.c.seconds + statement.excluded.seconds})
    db.session.execute(statement, [
        {"t_category": category, "t_trigger": trigger, "t_le": le, "t_count": count, "t_seconds": seconds}
        for (category, trigger, le), (count, seconds) in sorted(sums.items())])


def read() -> dict[tuple[str, str], tuple[list[tuple[str, int]], int, float]]:
    """{(category, trigger): (cumulative buckets [(le, count)], count, seconds)}."""
    rows = defaultdict(dict)
    for tally in db.session.scalars(select(CheckTally)):
        rows[(tally.category, tally.trigger)][tally.le] = (tally.count, tally.seconds)
    result = {}
    for key, by_le in rows.items():
        running, buckets = 0, []
        for le in [_label(b) for b in BUCKETS] + [INF]:
            running += by_le.get(le, (0, 0.0))[0]
            buckets.append((le, running))
        result[key] = (buckets, running, sum(seconds for _, seconds in by_le.values()))
    return result
