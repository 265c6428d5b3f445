"""The site keeps at least one active Site admin, whatever the interleaving of requests."""
from sqlalchemy import func

from ..extensions import db
from ..models import Role, User

MESSAGE = "The site needs an active Site admin: make someone else one first."


def _active_admins():
    return db.select(User.id).where(User.role == Role.ADMIN.value, User.active.is_(True))


def lock() -> None:
    """Before a change that may remove an admin: on PostgreSQL, hold the active admins' rows
    (in id order, so two requests never deadlock) until the transaction ends; a concurrent
    demotion waits, then no longer finds the admin it demoted. SQLite needs no lock here:
    pysqlite begins the transaction at the first write, which takes the database's write
    lock, and `none_left` counts inside that same transaction."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(_active_admins().order_by(User.id).with_for_update())


def none_left() -> bool:
    """After the change, in its transaction: whether it left no active Site admin."""
    db.session.flush()
    return db.session.scalar(db.select(func.count()).select_from(_active_admins().subquery())) == 0
