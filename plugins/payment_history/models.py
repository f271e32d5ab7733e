"""The payment_history plugin's table."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

from myhibachi.core import created_at, metadata, timestamp, uuid_pk

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

# A custom report as a worker job: the range summed in SQL and rendered to CSV and PDF, kept
# here so any API process serves the files.
payment_reports = sa.Table(
    "payment_reports",
    metadata,
    uuid_pk(),
    sa.Column("requested_by", sa.String(100), nullable=False),
    sa.Column("first_day", sa.Date, nullable=False),
    sa.Column("last_day", sa.Date, nullable=False),
    sa.Column("group_by", sa.String(8), nullable=False),
    sa.Column("time_zone", sa.String(64), nullable=False),
    sa.Column("by_location", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("status", sa.String(10), nullable=False, server_default="queued"),
    sa.Column("rows", JSONB),
    sa.Column("csv", sa.Text),
    sa.Column("pdf", sa.LargeBinary),
    sa.Column("error", sa.Text),
    created_at(),
    timestamp("finished_at"),
    sa.CheckConstraint("status IN ('queued', 'done', 'failed')", name="status"),
    sa.Index("ix_payment_reports_queued", "created_at", postgresql_where=sa.text("status = 'queued'")),
    info={"plugin": "payment_history"},
)
