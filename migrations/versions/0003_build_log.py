"""workspace build log

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 05:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'build_log_lines',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('workspace_id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('line', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('build_log_lines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_build_log_lines_workspace_id'), ['workspace_id'], unique=False)


def downgrade():
    with op.batch_alter_table('build_log_lines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_build_log_lines_workspace_id'))
    op.drop_table('build_log_lines')
