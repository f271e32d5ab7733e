"""The feedback plugin's table: one feedback per completed booking, its words sealed."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID

from myhibachi.core import created_at, metadata, uuid_pk

SENTIMENTS = ("positive", "neutral", "negative")

customer_feedback = sa.Table(
    "customer_feedback",
    metadata,
    uuid_pk(),
    sa.Column("customer_id", UUID(as_uuid=True), sa.ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    sa.Column("booking_id", UUID(as_uuid=True), sa.ForeignKey("bookings.id", ondelete="CASCADE"), nullable=False,
              unique=True),
    sa.Column("rating", sa.SmallInteger, nullable=False),
    sa.Column("text_enc", sa.Text, nullable=False),  # vault-sealed
    sa.Column("key_id", sa.String(40), nullable=False),
    sa.Column("sentiment_score", sa.Float, nullable=False),  # VADER compound, -1..1
    sa.Column("sentiment", sa.String(10), nullable=False),
    sa.Column("submitted_by", sa.String(64), nullable=False),
    created_at(),
    sa.CheckConstraint("rating BETWEEN 1 AND 5", name="rating"),
    sa.CheckConstraint(f"sentiment IN {SENTIMENTS}", name="sentiment"),
    sa.Index("ix_customer_feedback_customer", "customer_id", "created_at"),
    sa.Index("ix_customer_feedback_created", "created_at"),
    info={"plugin": "feedback"},
)
