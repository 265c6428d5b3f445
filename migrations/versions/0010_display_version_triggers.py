"""display_version triggers: the database bumps it whenever what a provider's row shows changes

Whoever writes it: the app, the scheduler, another process, a Core UPDATE or SQL by hand.

The badge poll's fingerprint (provider_admin/providers/fingerprint.py) and the cache of
rendered rows (provider_admin/providers/rows.py) rest on display_version. Before, each write
path bumped it by hand; these triggers are now the one place that does:

- providers: a change to a column a row shows (name, namespace, address, status and its
  message, category and warnings, cordon and its reason, Kubernetes version), or a check whose
  previous one is more than 120 s older, so that "last checked" is re-sent now and then;
- provider_organizations: a provider added to or removed from an organization;
- organizations: a rename, for every provider of the organization.

A value written together with a change (by hand, as before) is kept as it is.

On SQLite, a later migration that rebuilds one of these tables (batch "move and copy")
drops its triggers and must create them again: tests/test_display_version.py fails otherwise.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 09:40:00

"""
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

SHOWN = ("name", "namespace", "cluster_address", "status", "status_category", "status_message",
         "status_warnings", "cordoned", "cordon_reason", "kube_version")
CHECKED_AGAIN_AFTER = 120  # seconds

BUMP_PROVIDER = "UPDATE providers SET display_version = display_version + 1 WHERE id = {}"
BUMP_MEMBERS = ("UPDATE providers SET display_version = display_version + 1 WHERE id IN "
                "(SELECT provider_id FROM provider_organizations WHERE organization_id = NEW.id)")


def _sqlite_shown_changed() -> str:
    columns = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in SHOWN)
    checked = ("NEW.last_checked_at IS NOT NULL AND (OLD.last_checked_at IS NULL OR "
               "julianday(NEW.last_checked_at) - julianday(OLD.last_checked_at) > "
               f"{CHECKED_AGAIN_AFTER}.0 / 86400)")
    return f"NEW.display_version IS OLD.display_version AND ({columns} OR ({checked}))"


SQLITE = [
    f"""CREATE TRIGGER providers_display_version AFTER UPDATE ON providers FOR EACH ROW
        WHEN {_sqlite_shown_changed()}
        BEGIN {BUMP_PROVIDER.format("NEW.id")}; END""",
    f"""CREATE TRIGGER provider_organizations_added AFTER INSERT ON provider_organizations
        FOR EACH ROW BEGIN {BUMP_PROVIDER.format("NEW.provider_id")}; END""",
    f"""CREATE TRIGGER provider_organizations_removed AFTER DELETE ON provider_organizations
        FOR EACH ROW BEGIN {BUMP_PROVIDER.format("OLD.provider_id")}; END""",
    f"""CREATE TRIGGER organizations_renamed AFTER UPDATE OF name ON organizations FOR EACH ROW
        WHEN NEW.name IS NOT OLD.name
        BEGIN {BUMP_MEMBERS}; END""",
]
SQLITE_DROP = ["DROP TRIGGER IF EXISTS organizations_renamed",
               "DROP TRIGGER IF EXISTS provider_organizations_removed",
               "DROP TRIGGER IF EXISTS provider_organizations_added",
               "DROP TRIGGER IF EXISTS providers_display_version"]


def _postgresql_shown_changed() -> str:
    def row(prefix):
        return ", ".join(f"{prefix}.{c}::text" if c == "status_warnings" else f"{prefix}.{c}"
                         for c in SHOWN)
    checked = ("NEW.last_checked_at IS NOT NULL AND (OLD.last_checked_at IS NULL OR "
               f"NEW.last_checked_at - OLD.last_checked_at > interval '{CHECKED_AGAIN_AFTER} seconds')")
    return (f"NEW.display_version IS NOT DISTINCT FROM OLD.display_version AND "
            f"(({row('NEW')}) IS DISTINCT FROM ({row('OLD')}) OR ({checked}))")


POSTGRESQL = [
    f"""CREATE OR REPLACE FUNCTION providers_display_version() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF {_postgresql_shown_changed()} THEN
                NEW.display_version := OLD.display_version + 1;
            END IF;
            RETURN NEW;
        END $$""",
    """CREATE TRIGGER providers_display_version BEFORE UPDATE ON providers
        FOR EACH ROW EXECUTE FUNCTION providers_display_version()""",
    f"""CREATE OR REPLACE FUNCTION provider_organizations_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' THEN
                {BUMP_PROVIDER.format("OLD.provider_id")};
            ELSE
                {BUMP_PROVIDER.format("NEW.provider_id")};
            END IF;
            RETURN NULL;
        END $$""",
    """CREATE TRIGGER provider_organizations_changed AFTER INSERT OR DELETE ON provider_organizations
        FOR EACH ROW EXECUTE FUNCTION provider_organizations_changed()""",
    f"""CREATE OR REPLACE FUNCTION organizations_renamed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            {BUMP_MEMBERS};
            RETURN NULL;
        END $$""",
    """CREATE TRIGGER organizations_renamed AFTER UPDATE OF name ON organizations FOR EACH ROW
        WHEN (NEW.name IS DISTINCT FROM OLD.name) EXECUTE FUNCTION organizations_renamed()""",
]
POSTGRESQL_DROP = ["DROP TRIGGER IF EXISTS organizations_renamed ON organizations",
                   "DROP FUNCTION IF EXISTS organizations_renamed()",
                   "DROP TRIGGER IF EXISTS provider_organizations_changed ON provider_organizations",
                   "DROP FUNCTION IF EXISTS provider_organizations_changed()",
                   "DROP TRIGGER IF EXISTS providers_display_version ON providers",
                   "DROP FUNCTION IF EXISTS providers_display_version()"]


def _statements(create: bool) -> list[str]:
    if op.get_bind().dialect.name == "postgresql":
        return POSTGRESQL if create else POSTGRESQL_DROP
    return SQLITE if create else SQLITE_DROP


def upgrade():
    for statement in _statements(create=True):
        op.execute(statement)


def downgrade():
    for statement in _statements(create=False):
        op.execute(statement)
