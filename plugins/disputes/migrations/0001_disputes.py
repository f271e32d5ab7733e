"""disputes

Revision ID: disputes_0001
Revises: (first of its branch)
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'disputes_0001'
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = ('disputes',)
depends_on: Union[str, Sequence[str], None] = 'core_customers'


def upgrade() -> None:
    op.create_table('disputes',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('provider_dispute_id', sa.String(length=255), nullable=False),
    sa.Column('charge_id', sa.String(length=255), nullable=True),
    sa.Column('intent_id', sa.String(length=255), nullable=True),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('reason', sa.String(length=100), nullable=True),
    sa.Column('status', sa.String(length=50), nullable=False),
    sa.Column('due_by', sa.DateTime(timezone=True), nullable=True),
    sa.Column('evidence', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('responded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_disputes')),
    sa.UniqueConstraint('provider_dispute_id', name='uq_disputes_provider_dispute_id'),
    )
    op.create_index('ix_disputes_created', 'disputes', ['created_at', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_disputes_created', table_name='disputes')
    op.drop_table('disputes')
