"""The reminders plugin's table."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID

from myhibachi.core import created_at, metadata, timestamp, uuid_pk

OWNER = {"plugin": "reminders"}

TYPES = ("24h_before", "1h_before", "custom")
CHANNELS = ("email", "sms", "both")
# 'sent': handed to comms, which sends its messages. 'sending' is no longer written (comms
# owns sending and its at-most-once rule); the constraint and its index stay for old rows.
STATUSES = ("pending", "sending", "sent", "failed", "cancelled")

booking_reminders = sa.Table(
    "booking_reminders",
    metadata,
    uuid_pk(),
    sa.Column("booking_id", UUID(as_uuid=True), sa.ForeignKey("bookings.id", ondelete="CASCADE"), nullable=False),
    sa.Column("reminder_type", sa.String(50), nullable=False),
    timestamp("scheduled_at", nullable=False),
    timestamp("sent_at"),
    sa.Column("status", sa.String(20), nullable=False, server_default="pending"),
    sa.Column("notification_channel", sa.String(20), nullable=False, server_default="both"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    # when the worker may next try: scheduled_at at first, later pushed back by retries.
    timestamp("next_attempt_at", nullable=False),
    created_at(),
    timestamp("updated_at", nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint(f"reminder_type IN {TYPES}", name="reminder_type"),
    sa.CheckConstraint(f"notification_channel IN {CHANNELS}", name="notification_channel"),
    sa.CheckConstraint(f"status IN {STATUSES}", name="status"),
    sa.Index("ix_booking_reminders_booking", "booking_id", "scheduled_at"),
    sa.Index("ix_booking_reminders_due", "next_attempt_at", postgresql_where=sa.text("status = 'pending'")),
    sa.Index("ix_booking_reminders_sending", "updated_at", postgresql_where=sa.text("status = 'sending'")),
    # one live 24h/1h reminder per booking and time; a cancelled one may be scheduled again.
    sa.Index("uq_booking_reminders_kind", "booking_id", "reminder_type", "scheduled_at", unique=True,
             postgresql_where=sa.text("reminder_type <> 'custom' AND status <> 'cancelled'")),
    info=OWNER,
)
