"""workspaces: a uid that is never reused, stored object names and where they were built

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 09:00:00

Existing workspaces keep the object names they were built with ("ws-<id>-<name>"), are
known in the cluster by their id label, and are taken to be where their provider points now.
"""
import uuid

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

NEW_COLUMNS = (
    sa.Column('delete_requested', sa.Boolean(), nullable=True),
    sa.Column('uid', sa.String(length=32), nullable=True),
    sa.Column('object_base', sa.String(length=63), nullable=True),
    sa.Column('legacy_labels', sa.Boolean(), nullable=True),
    sa.Column('namespace', sa.String(length=63), nullable=True),
    sa.Column('cluster_address', sa.String(length=2048), nullable=True),
)


def upgrade():
    with op.batch_alter_table('workspaces', schema=None) as batch_op:
        for column in NEW_COLUMNS:
            batch_op.add_column(column._copy())

    workspaces = sa.table('workspaces', sa.column('id', sa.Integer), sa.column('name', sa.String),
                          sa.column('provider_id', sa.Integer), sa.column('uid', sa.String),
                          sa.column('object_base', sa.String), sa.column('legacy_labels', sa.Boolean),
                          sa.column('delete_requested', sa.Boolean), sa.column('namespace', sa.String),
                          sa.column('cluster_address', sa.String))
    providers = sa.table('providers', sa.column('id', sa.Integer), sa.column('namespace', sa.String),
                         sa.column('cluster_address', sa.String))
    bind = op.get_bind()
    of_provider = providers.c.id == workspaces.c.provider_id
    bind.execute(workspaces.update().values(
        object_base=sa.func.substr(sa.literal('ws-') + sa.cast(workspaces.c.id, sa.String)
                                   + sa.literal('-') + workspaces.c.name, 1, 63),
        legacy_labels=True, delete_requested=False,
        namespace=sa.select(providers.c.namespace).where(of_provider).scalar_subquery(),
        cluster_address=sa.select(providers.c.cluster_address).where(of_provider).scalar_subquery(),
    ))
    for (workspace_id,) in bind.execute(sa.select(workspaces.c.id)).all():
        bind.execute(workspaces.update().where(workspaces.c.id == workspace_id)
                     .values(uid=uuid.uuid4().hex))

    with op.batch_alter_table('workspaces', schema=None) as batch_op:
        for name in ('delete_requested', 'uid', 'object_base', 'legacy_labels', 'namespace'):
            batch_op.alter_column(name, existing_type=next(c.type for c in NEW_COLUMNS if c.name == name),
                                  nullable=False)
        batch_op.create_index(batch_op.f('ix_workspaces_uid'), ['uid'], unique=True)


def downgrade():
    with op.batch_alter_table('workspaces', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_workspaces_uid'))
        for column in reversed(NEW_COLUMNS):
            batch_op.drop_column(column.name)
