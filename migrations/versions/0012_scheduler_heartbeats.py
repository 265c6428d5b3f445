"""scheduler heartbeats: each scheduler process and its last tick; who asked for a check

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29 12:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'scheduler_heartbeats',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('run_id', sa.String(length=32), nullable=False),
        sa.Column('host', sa.String(length=255), nullable=False),
        sa.Column('pid', sa.Integer(), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_tick_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('interval', sa.Float(), nullable=False),
        sa.Column('version', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('run_id'),
    )
    with op.batch_alter_table('scheduler_heartbeats', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_scheduler_heartbeats_last_tick_at'), ['last_tick_at'], unique=False)
    with op.batch_alter_table('provider_checks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('checked_by', sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table('provider_checks', schema=None) as batch_op:
        batch_op.drop_column('checked_by')
    with op.batch_alter_table('scheduler_heartbeats', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_scheduler_heartbeats_last_tick_at'))
    op.drop_table('scheduler_heartbeats')
