"""check generation: results computed for older connection settings are superseded

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 06:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('providers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('check_generation', sa.Integer(), nullable=False,
                                      server_default='1'))
    with op.batch_alter_table('provider_checks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('superseded', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    # The server defaults only filled the existing rows; the models give the values.
    with op.batch_alter_table('providers', schema=None) as batch_op:
        batch_op.alter_column('check_generation', server_default=None)
    with op.batch_alter_table('provider_checks', schema=None) as batch_op:
        batch_op.alter_column('superseded', server_default=None)


def downgrade():
    with op.batch_alter_table('provider_checks', schema=None) as batch_op:
        batch_op.drop_column('superseded')
    with op.batch_alter_table('providers', schema=None) as batch_op:
        batch_op.drop_column('check_generation')
