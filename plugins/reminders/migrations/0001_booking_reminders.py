"""booking reminders

Revision ID: reminders_0001
Revises: (first of its branch; depends on the core's tables)
Create Date: 2026-11-24 22:20:38.319701
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


revision: str = 'reminders_0001'
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = ('reminders',)
depends_on: Union[str, Sequence[str], None] = 'core_0001'


def upgrade() -> None:
    op.create_table('booking_reminders',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('booking_id', sa.UUID(), nullable=False),
    sa.Column('reminder_type', sa.String(length=50), nullable=False),
    sa.Column('scheduled_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=20), server_default='pending', nullable=False),
    sa.Column('notification_channel', sa.String(length=20), server_default='both', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("notification_channel IN ('email', 'sms', 'both')", name=op.f('ck_booking_reminders_notification_channel')),
    sa.CheckConstraint("reminder_type IN ('24h_before', '1h_before', 'custom')", name=op.f('ck_booking_reminders_reminder_type')),
    sa.CheckConstraint("status IN ('pending', 'sending', 'sent', 'failed', 'cancelled')", name=op.f('ck_booking_reminders_status')),
    sa.ForeignKeyConstraint(['booking_id'], ['bookings.id'], name=op.f('fk_booking_reminders_booking_id_bookings'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_booking_reminders')),
    info={'plugin': 'reminders'}
    )
    op.create_index('ix_booking_reminders_booking', 'booking_reminders', ['booking_id', 'scheduled_at'], unique=False)
    op.create_index('ix_booking_reminders_due', 'booking_reminders', ['next_attempt_at'], unique=False, postgresql_where=sa.text("status = 'pending'"))
    op.create_index('ix_booking_reminders_sending', 'booking_reminders', ['updated_at'], unique=False, postgresql_where=sa.text("status = 'sending'"))
    op.create_index('uq_booking_reminders_kind', 'booking_reminders', ['booking_id', 'reminder_type', 'scheduled_at'], unique=True, postgresql_where=sa.text("reminder_type <> 'custom' AND status <> 'cancelled'"))


def downgrade() -> None:
    op.drop_index('uq_booking_reminders_kind', table_name='booking_reminders', postgresql_where=sa.text("reminder_type <> 'custom' AND status <> 'cancelled'"))
    op.drop_index('ix_booking_reminders_sending', table_name='booking_reminders', postgresql_where=sa.text("status = 'sending'"))
    op.drop_index('ix_booking_reminders_due', table_name='booking_reminders', postgresql_where=sa.text("status = 'pending'"))
    op.drop_index('ix_booking_reminders_booking', table_name='booking_reminders')
    op.drop_table('booking_reminders')
