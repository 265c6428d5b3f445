"""Counts kept in the database so that every web process reports the same, whichever
scheduler process did the work (see provider_admin.metrics)."""
from sqlalchemy import BigInteger, Float, String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db


class CheckTally(db.Model):
    """Health checks counted by result category, trigger and duration bucket (`le`, the
    bucket's upper bound in seconds, as Prometheus writes it), with their summed duration.
    Each check adds to exactly one row, in the transaction that records its result."""

    __tablename__ = "check_tallies"

    category: Mapped[str] = mapped_column(String(32), primary_key=True)
    trigger: Mapped[str] = mapped_column(String(16), primary_key=True)
    le: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
