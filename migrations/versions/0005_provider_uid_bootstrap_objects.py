"""provider uid (its identity in the cluster) and the bootstrap objects Deploy created

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 06:40:00

"""
import uuid

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('providers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('uid', sa.String(length=36), nullable=True))
    providers = sa.table('providers', sa.column('id', sa.Integer), sa.column('uid', sa.String))
    connection = op.get_bind()
    for (provider_id,) in connection.execute(sa.select(providers.c.id)).all():
        connection.execute(providers.update().where(providers.c.id == provider_id)
                           .values(uid=str(uuid.uuid4())))
    with op.batch_alter_table('providers', schema=None) as batch_op:
        batch_op.alter_column('uid', existing_type=sa.String(length=36), nullable=False)
        batch_op.create_unique_constraint('uq_providers_uid', ['uid'])

    op.create_table(
        'provider_bootstrap_objects',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('provider_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=64), nullable=False),
        sa.Column('namespace', sa.String(length=63), nullable=False),
        sa.Column('name', sa.String(length=253), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['provider_id'], ['providers.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('provider_id', 'kind', 'namespace', 'name'),
    )
    with op.batch_alter_table('provider_bootstrap_objects', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_provider_bootstrap_objects_provider_id'),
                              ['provider_id'], unique=False)


def downgrade():
    with op.batch_alter_table('provider_bootstrap_objects', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_provider_bootstrap_objects_provider_id'))
    op.drop_table('provider_bootstrap_objects')
    with op.batch_alter_table('providers', schema=None) as batch_op:
        batch_op.drop_constraint('uq_providers_uid', type_='unique')
        batch_op.drop_column('uid')
