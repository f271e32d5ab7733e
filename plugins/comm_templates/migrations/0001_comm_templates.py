"""message templates and their versions

Revision ID: comm_templates_0001
Revises: (first of its branch; depends on the core's head)
Create Date: 2026-12-03 16:43:00.686739
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'comm_templates_0001'
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = ('comm_templates',)
depends_on: Union[str, Sequence[str], None] = 'core_booking_pools'


def upgrade() -> None:
    op.create_table('comm_templates',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('language', sa.String(length=10), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("channel IN ('sms', 'email')", name=op.f('ck_comm_templates_channel')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_comm_templates')),
    info={'plugin': 'comm_templates'}
    )
    op.create_index('uq_comm_templates_live_key', 'comm_templates', ['key', 'channel', 'language'], unique=True, postgresql_where=sa.text('deleted_at IS NULL'))
    op.create_table('comm_template_versions',
    sa.Column('template_id', sa.UUID(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('subject', sa.Text(), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('html', sa.Text(), nullable=True),
    sa.Column('variables', postgresql.ARRAY(sa.String(length=50)), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['template_id'], ['comm_templates.id'], name=op.f('fk_comm_template_versions_template_id_comm_templates'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('template_id', 'version', name=op.f('pk_comm_template_versions')),
    info={'plugin': 'comm_templates'}
    )


def downgrade() -> None:
    op.drop_table('comm_template_versions')
    op.drop_index('uq_comm_templates_live_key', table_name='comm_templates', postgresql_where=sa.text('deleted_at IS NULL'))
    op.drop_table('comm_templates')
