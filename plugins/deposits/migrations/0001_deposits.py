"""deposits, their refunds, provider webhook events and disputes

Revision ID: deposits_0001
Revises: (first of its branch; depends on the core's tables)
Create Date: 2026-11-24 23:14:59.787876
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'deposits_0001'
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = ('deposits',)
depends_on: Union[str, Sequence[str], None] = 'core_customers'


def upgrade() -> None:
    op.create_table('deposits',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('booking_id', sa.UUID(), nullable=False),
    sa.Column('customer_id', sa.UUID(), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=24), server_default='requires_payment', nullable=False),
    sa.Column('intent_id', sa.String(length=255), nullable=False),
    sa.Column('client_secret', sa.String(length=255), nullable=True),
    sa.Column('payment_method', sa.String(length=255), nullable=True),
    sa.Column('captured_cents', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('refunded_cents', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('succeeded_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('requires_payment', 'processing', 'succeeded', 'partially_refunded', 'refunded', 'cancelled', 'failed')", name=op.f('ck_deposits_status')),
    sa.CheckConstraint('amount_cents > 0', name=op.f('ck_deposits_amount_positive')),
    sa.CheckConstraint('captured_cents >= 0 AND captured_cents <= amount_cents', name=op.f('ck_deposits_captured_range')),
    sa.CheckConstraint('refunded_cents >= 0 AND refunded_cents <= captured_cents', name=op.f('ck_deposits_refunded_range')),
    sa.ForeignKeyConstraint(['booking_id'], ['bookings.id'], name=op.f('fk_deposits_booking_id_bookings'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_deposits_customer_id_customers'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deposits')),
    sa.UniqueConstraint('intent_id', name='uq_deposits_intent_id'),
    info={'plugin': 'deposits'}
    )
    op.create_index('ix_deposits_booking', 'deposits', ['booking_id'], unique=False)
    op.create_index('ix_deposits_created', 'deposits', ['created_at', 'id'], unique=False)
    op.create_index('ix_deposits_customer_created', 'deposits', ['customer_id', 'created_at'], unique=False)
    op.create_index('ix_deposits_unsettled', 'deposits', ['updated_at'], unique=False, postgresql_where=sa.text("status IN ('requires_payment', 'processing')"))
    op.create_table('deposit_refunds',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('deposit_id', sa.UUID(), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('provider_refund_id', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('amount_cents > 0', name=op.f('ck_deposit_refunds_amount_positive')),
    sa.ForeignKeyConstraint(['deposit_id'], ['deposits.id'], name=op.f('fk_deposit_refunds_deposit_id_deposits'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deposit_refunds')),
    info={'plugin': 'deposits'}
    )
    op.create_index('ix_deposit_refunds_deposit', 'deposit_refunds', ['deposit_id', 'created_at'], unique=False)
    op.create_table('payment_disputes',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('provider_dispute_id', sa.String(length=255), nullable=False),
    sa.Column('deposit_id', sa.UUID(), nullable=True),
    sa.Column('intent_id', sa.String(length=255), nullable=True),
    sa.Column('charge_id', sa.String(length=255), nullable=True),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('reason', sa.String(length=100), nullable=True),
    sa.Column('status', sa.String(length=50), nullable=True),
    sa.Column('raw', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['deposit_id'], ['deposits.id'], name=op.f('fk_payment_disputes_deposit_id_deposits'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_disputes')),
    sa.UniqueConstraint('provider_dispute_id', name='uq_payment_disputes_provider_dispute_id'),
    info={'plugin': 'deposits'}
    )
    op.create_table('payment_webhook_events',
    sa.Column('id', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=100), nullable=False),
    sa.Column('deposit_id', sa.UUID(), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['deposit_id'], ['deposits.id'], name=op.f('fk_payment_webhook_events_deposit_id_deposits'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_webhook_events')),
    info={'plugin': 'deposits'}
    )


def downgrade() -> None:
    op.drop_table('payment_webhook_events')
    op.drop_table('payment_disputes')
    op.drop_index('ix_deposit_refunds_deposit', table_name='deposit_refunds')
    op.drop_table('deposit_refunds')
    op.drop_index('ix_deposits_unsettled', table_name='deposits', postgresql_where=sa.text("status IN ('requires_payment', 'processing')"))
    op.drop_index('ix_deposits_customer_created', table_name='deposits')
    op.drop_index('ix_deposits_created', table_name='deposits')
    op.drop_index('ix_deposits_booking', table_name='deposits')
    op.drop_table('deposits')
