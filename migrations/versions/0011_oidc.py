"""single sign-on: users' identity at the provider, what it said last, break-glass links;
memberships made by identity-provider sync

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 09:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

USER_COLUMNS = (
    sa.Column('oidc_issuer', sa.String(length=255), nullable=True),
    sa.Column('oidc_subject', sa.String(length=255), nullable=True),
    sa.Column('idp_managed', sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column('idp_claims', sa.JSON(none_as_null=True), nullable=True),
    sa.Column('idp_outcome', sa.JSON(none_as_null=True), nullable=True),
    sa.Column('idp_synced_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('break_glass_hash', sa.String(length=64), nullable=True),
    sa.Column('break_glass_expires_at', sa.DateTime(timezone=True), nullable=True),
)


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        for column in USER_COLUMNS:
            batch_op.add_column(column._copy())
        batch_op.create_unique_constraint('uq_users_oidc_identity', ['oidc_issuer', 'oidc_subject'])
    # The server default only filled the existing rows; the model gives the value.
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.alter_column('idp_managed', existing_type=sa.Boolean(), server_default=None)
    # Every existing membership was given by hand.
    with op.batch_alter_table('organization_members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=8), nullable=False,
                                      server_default='manual'))


def downgrade():
    with op.batch_alter_table('organization_members', schema=None) as batch_op:
        batch_op.drop_column('source')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint('uq_users_oidc_identity', type_='unique')
        for column in reversed(USER_COLUMNS):
            batch_op.drop_column(column.name)
