"""check result key: each scheduled result carries a key, so a write sent again after the
database went away mid-commit is recognised instead of recorded twice

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 19:10:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('provider_checks') as batch:
        batch.add_column(sa.Column('result_key', sa.String(length=32), nullable=True))
        batch.create_index(batch.f('ix_provider_checks_result_key'), ['result_key'], unique=True)


def downgrade():
    with op.batch_alter_table('provider_checks') as batch:
        batch.drop_index(batch.f('ix_provider_checks_result_key'))
        batch.drop_column('result_key')
