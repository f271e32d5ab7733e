"""the payments ledger

Revision ID: payment_history_0001
Revises: (first of its branch)
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = 'payment_history_0001'
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = ('payment_history',)
depends_on: Union[str, Sequence[str], None] = 'core_customers'


def upgrade() -> None:
    op.create_table('payment_ledger',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('event_id', sa.UUID(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('payment_id', sa.UUID(), nullable=False),
    sa.Column('booking_id', sa.UUID(), nullable=False),
    sa.Column('customer_id', sa.UUID(), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('charge', 'refund')", name=op.f('ck_payment_ledger_kind')),
    sa.CheckConstraint('amount_cents > 0', name=op.f('ck_payment_ledger_amount_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_ledger')),
    sa.UniqueConstraint('event_id', name='uq_payment_ledger_event_id'),
    )
    op.create_index('ix_payment_ledger_occurred', 'payment_ledger', ['occurred_at', 'id'], unique=False,
                    postgresql_include=['kind', 'currency', 'amount_cents'])
    op.create_index('ix_payment_ledger_customer', 'payment_ledger', ['customer_id', 'occurred_at', 'id'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_payment_ledger_customer', table_name='payment_ledger')
    op.drop_index('ix_payment_ledger_occurred', table_name='payment_ledger')
    op.drop_table('payment_ledger')
