"""customer feedback

Revision ID: feedback_0001
Revises: (first of its branch; depends on the core's customers and bookings)
Create Date: 2026-12-04 23:50:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = 'feedback_0001'
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = ('feedback',)
depends_on: Union[str, Sequence[str], None] = 'core_booking_pools'


def upgrade() -> None:
    op.create_table('customer_feedback',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('customer_id', sa.UUID(), nullable=False),
    sa.Column('booking_id', sa.UUID(), nullable=False),
    sa.Column('rating', sa.SmallInteger(), nullable=False),
    sa.Column('text_enc', sa.Text(), nullable=False),
    sa.Column('key_id', sa.String(length=40), nullable=False),
    sa.Column('sentiment_score', sa.Float(), nullable=False),
    sa.Column('sentiment', sa.String(length=10), nullable=False),
    sa.Column('submitted_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('rating BETWEEN 1 AND 5', name=op.f('ck_customer_feedback_rating')),
    sa.CheckConstraint("sentiment IN ('positive', 'neutral', 'negative')", name=op.f('ck_customer_feedback_sentiment')),
    sa.ForeignKeyConstraint(['booking_id'], ['bookings.id'], name=op.f('fk_customer_feedback_booking_id_bookings'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_customer_feedback_customer_id_customers'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_feedback')),
    sa.UniqueConstraint('booking_id', name=op.f('uq_customer_feedback_booking_id')),
    info={'plugin': 'feedback'}
    )
    op.create_index('ix_customer_feedback_customer', 'customer_feedback', ['customer_id', 'created_at'], unique=False)
    op.create_index('ix_customer_feedback_created', 'customer_feedback', ['created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_customer_feedback_created', table_name='customer_feedback')
    op.drop_index('ix_customer_feedback_customer', table_name='customer_feedback')
    op.drop_table('customer_feedback')
