"""check tallies: health checks counted by category, trigger and duration bucket, for /metrics

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29 12:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'check_tallies',
        sa.Column('category', sa.String(length=32), nullable=False),
        sa.Column('trigger', sa.String(length=16), nullable=False),
        sa.Column('le', sa.String(length=16), nullable=False),
        sa.Column('count', sa.BigInteger(), nullable=False),
        sa.Column('seconds', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('category', 'trigger', 'le'),
    )


def downgrade():
    op.drop_table('check_tallies')
