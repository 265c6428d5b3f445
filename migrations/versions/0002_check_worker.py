"""record which scheduler process ran each check

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 05:20:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('provider_checks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('worker', sa.String(length=128), nullable=True))


def downgrade():
    with op.batch_alter_table('provider_checks', schema=None) as batch_op:
        batch_op.drop_column('worker')
