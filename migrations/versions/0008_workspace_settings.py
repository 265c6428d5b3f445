"""workspace settings: the provider settings each workspace was built with

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 09:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    # Existing workspaces keep NULL: what they were built with was never recorded, and the
    # pages say so rather than guess.
    with op.batch_alter_table('workspaces', schema=None) as batch_op:
        batch_op.add_column(sa.Column('settings', sa.JSON(none_as_null=True), nullable=True))


def downgrade():
    with op.batch_alter_table('workspaces', schema=None) as batch_op:
        batch_op.drop_column('settings')
