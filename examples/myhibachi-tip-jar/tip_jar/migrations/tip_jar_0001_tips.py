"""tip jar tips

Revision ID: tip_jar_0001
Revises:
Create Date: 2026-11-24 22:19:18.652957
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = 'tip_jar_0001'
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = ('tip_jar',)
depends_on: Union[str, Sequence[str], None] = 'core_0001'


def upgrade() -> None:
    op.create_table('tip_jar_tips',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('booking_id', sa.UUID(), nullable=False),
    sa.Column('customer_id', sa.UUID(), nullable=False),
    sa.Column('status', sa.String(length=10), server_default='invited', nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('currency', sa.String(length=3), server_default='USD', nullable=False),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('given_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('amount_cents >= 0', name=op.f('ck_tip_jar_tips_amount_not_negative')),
    sa.ForeignKeyConstraint(['booking_id'], ['bookings.id'], name=op.f('fk_tip_jar_tips_booking_id_bookings'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_tip_jar_tips_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tip_jar_tips')),
    sa.UniqueConstraint('booking_id', name='uq_tip_jar_tips_booking_id')
    )


def downgrade() -> None:
    op.drop_table('tip_jar_tips')
