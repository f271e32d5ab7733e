"""customer merge tombstones

Revision ID: customer_merge_0001
Revises: (first of its branch; depends on the core's customers)
Create Date: 2026-12-03 16:50:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'customer_merge_0001'
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = ('customer_merge',)
depends_on: Union[str, Sequence[str], None] = 'core_customers'


def upgrade() -> None:
    op.create_table('customer_merges',
    sa.Column('source_id', sa.UUID(), nullable=False),
    sa.Column('target_id', sa.UUID(), nullable=False),
    sa.Column('actor_kind', sa.String(length=20), nullable=False),
    sa.Column('actor_id', sa.String(length=64), nullable=True),
    sa.Column('taken', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('bookings_moved', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['source_id'], ['customers.id'], name=op.f('fk_customer_merges_source_id_customers')),
    sa.ForeignKeyConstraint(['target_id'], ['customers.id'], name=op.f('fk_customer_merges_target_id_customers')),
    sa.PrimaryKeyConstraint('source_id', name=op.f('pk_customer_merges')),
    info={'plugin': 'customer_merge'}
    )
    op.create_index('ix_customer_merges_target', 'customer_merges', ['target_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_customer_merges_target', table_name='customer_merges')
    op.drop_table('customer_merges')
