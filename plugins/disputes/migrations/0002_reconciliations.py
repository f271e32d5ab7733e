"""payment reconciliations

Revision ID: disputes_0002
Revises: disputes_0001
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'disputes_0002'
down_revision: Union[str, Sequence[str], None] = 'disputes_0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('payment_reconciliations',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('requested_by', sa.String(length=100), nullable=False),
    sa.Column('first_day', sa.Date(), nullable=False),
    sa.Column('last_day', sa.Date(), nullable=False),
    sa.Column('time_zone', sa.String(length=64), nullable=False),
    sa.Column('range_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('range_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='queued', nullable=False),
    sa.Column('cursor', sa.String(length=255), nullable=True),
    sa.Column('fetched', sa.Integer(), server_default='0', nullable=False),
    sa.Column('matched', sa.Integer(), server_default='0', nullable=False),
    sa.Column('report', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('due_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('queued', 'running', 'done')", name=op.f('ck_payment_reconciliations_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_reconciliations')),
    )
    op.create_index('ix_payment_reconciliations_due', 'payment_reconciliations', ['due_at'], unique=False,
                    postgresql_where=sa.text("status <> 'done'"))
    op.create_table('payment_reconciliation_txns',
    sa.Column('run_id', sa.UUID(), nullable=False),
    sa.Column('txn_id', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('fee_cents', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source_id', sa.String(length=255), nullable=True),
    sa.Column('intent_id', sa.String(length=255), nullable=True),
    sa.Column('payment_id', sa.String(length=64), nullable=True),
    sa.Column('booking_id', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['payment_reconciliations.id'],
                            name=op.f('fk_payment_reconciliation_txns_run_id_payment_reconciliations'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'txn_id', name=op.f('pk_payment_reconciliation_txns')),
    )


def downgrade() -> None:
    op.drop_table('payment_reconciliation_txns')
    op.drop_index('ix_payment_reconciliations_due', table_name='payment_reconciliations',
                  postgresql_where=sa.text("status <> 'done'"))
    op.drop_table('payment_reconciliations')
