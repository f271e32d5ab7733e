"""The payment_history plugin's table."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID

from myhibachi.core import metadata, timestamp, uuid_pk

KINDS = ("charge", "refund", "fee")

payment_ledger = sa.Table(
    "payment_ledger",
    metadata,
    uuid_pk(),
    sa.Column("event_id", UUID(as_uuid=True), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("payment_id", UUID(as_uuid=True), nullable=False),
    sa.Column("booking_id", UUID(as_uuid=True), nullable=False),
    sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    timestamp("occurred_at", nullable=False),
    # the location of the booking when the money moved (None without the locations plugin)
    sa.Column("location_id", UUID(as_uuid=True)),
    sa.CheckConstraint(f"kind IN {KINDS}", name="kind"),
    sa.CheckConstraint("amount_cents > 0", name="amount_positive"),
    sa.UniqueConstraint("event_id", name="uq_payment_ledger_event_id"),
    # the reports scan a time range and sum from the index alone
    sa.Index("ix_payment_ledger_occurred", "occurred_at", "id",
             postgresql_include=["kind", "currency", "amount_cents", "location_id"]),
    sa.Index("ix_payment_ledger_customer", "customer_id", "occurred_at", "id"),
    info={"plugin": "payment_history"},
)
