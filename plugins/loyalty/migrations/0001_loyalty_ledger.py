"""loyalty accounts and ledger

Revision ID: loyalty_0001
Revises: (first of its branch; depends on the core's tables)
Create Date: 2026-11-24 23:12:10.579470
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'loyalty_0001'
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = ('loyalty',)
depends_on: Union[str, Sequence[str], None] = 'core_customers'


def upgrade() -> None:
    op.create_table('loyalty_accounts',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('customer_id', sa.UUID(), nullable=False),
    sa.Column('points_balance', sa.Integer(), server_default='0', nullable=False),
    sa.Column('lifetime_points', sa.Integer(), server_default='0', nullable=False),
    sa.Column('points_debt', sa.Integer(), server_default='0', nullable=False),
    sa.Column('tier', sa.String(length=20), server_default='bronze', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("tier IN ('bronze', 'silver', 'gold', 'platinum')", name=op.f('ck_loyalty_accounts_tier')),
    sa.CheckConstraint('lifetime_points >= 0', name=op.f('ck_loyalty_accounts_lifetime_not_negative')),
    sa.CheckConstraint('points_balance >= 0', name=op.f('ck_loyalty_accounts_balance_not_negative')),
    sa.CheckConstraint('points_debt >= 0', name=op.f('ck_loyalty_accounts_debt_not_negative')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_loyalty_accounts_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loyalty_accounts')),
    sa.UniqueConstraint('customer_id', name=op.f('uq_loyalty_accounts_customer_id')),
    info={'plugin': 'loyalty'}
    )
    op.create_table('loyalty_transactions',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('account_id', sa.UUID(), nullable=False),
    sa.Column('booking_id', sa.UUID(), nullable=True),
    sa.Column('transaction_type', sa.String(length=20), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('balance_after', sa.Integer(), nullable=False),
    sa.Column('debt_points', sa.Integer(), server_default='0', nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('source_key', sa.String(length=200), nullable=True),
    sa.Column('payment_id', sa.String(length=200), nullable=True),
    sa.Column('amount_cents', sa.BigInteger(), nullable=True),
    sa.Column('remaining', sa.Integer(), server_default='0', nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lot_status', sa.String(length=10), nullable=True),
    sa.Column('lots', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('actor', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("lot_status IS NULL OR lot_status IN ('open', 'spent', 'expired')", name=op.f('ck_loyalty_transactions_lot_status')),
    sa.CheckConstraint("transaction_type IN ('earn', 'redeem', 'unredeem', 'refund', 'expire', 'adjustment')", name=op.f('ck_loyalty_transactions_transaction_type')),
    sa.CheckConstraint('balance_after >= 0', name=op.f('ck_loyalty_transactions_balance_after_not_negative')),
    sa.CheckConstraint('remaining >= 0 AND remaining <= GREATEST(points, 0)', name=op.f('ck_loyalty_transactions_remaining_within_lot')),
    sa.ForeignKeyConstraint(['account_id'], ['loyalty_accounts.id'], name=op.f('fk_loyalty_transactions_account_id_loyalty_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['booking_id'], ['bookings.id'], name=op.f('fk_loyalty_transactions_booking_id_bookings'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loyalty_transactions')),
    sa.UniqueConstraint('seq', name=op.f('uq_loyalty_transactions_seq')),
    sa.UniqueConstraint('source_key', name=op.f('uq_loyalty_transactions_source_key')),
    info={'plugin': 'loyalty'}
    )
    op.create_index('ix_loyalty_transactions_account', 'loyalty_transactions', ['account_id', 'seq'], unique=False)
    op.create_index('ix_loyalty_transactions_booking', 'loyalty_transactions', ['booking_id'], unique=False, postgresql_where=sa.text('booking_id IS NOT NULL'))
    op.create_index('ix_loyalty_transactions_due', 'loyalty_transactions', ['expires_at'], unique=False, postgresql_where=sa.text("lot_status = 'open'"))
    op.create_index('ix_loyalty_transactions_payment', 'loyalty_transactions', ['payment_id'], unique=False, postgresql_where=sa.text('payment_id IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('ix_loyalty_transactions_payment', table_name='loyalty_transactions', postgresql_where=sa.text('payment_id IS NOT NULL'))
    op.drop_index('ix_loyalty_transactions_due', table_name='loyalty_transactions', postgresql_where=sa.text("lot_status = 'open'"))
    op.drop_index('ix_loyalty_transactions_booking', table_name='loyalty_transactions', postgresql_where=sa.text('booking_id IS NOT NULL'))
    op.drop_index('ix_loyalty_transactions_account', table_name='loyalty_transactions')
    op.drop_table('loyalty_transactions')
    op.drop_table('loyalty_accounts')
