"""The disputes plugin's table."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

from myhibachi.core import created_at, metadata, timestamp, uuid_pk

disputes = sa.Table(
    "disputes",
    metadata,
    uuid_pk(),
    sa.Column("provider_dispute_id", sa.String(255), nullable=False),
    sa.Column("charge_id", sa.String(255)),
    sa.Column("intent_id", sa.String(255)),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("reason", sa.String(100)),
    sa.Column("status", sa.String(50), nullable=False),
    timestamp("due_by"),
    sa.Column("evidence", JSONB),
    timestamp("responded_at"),
    # when staff were told the evidence deadline is near (once per dispute)
    timestamp("reminded_at"),
    created_at(),
    timestamp("updated_at", nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("provider_dispute_id", name="uq_disputes_provider_dispute_id"),
    sa.Index("ix_disputes_created", "created_at", "id"),
    sa.Index("ix_disputes_unreminded", "due_by", postgresql_where=sa.text("reminded_at IS NULL")),
    info={"plugin": "disputes"},
)

# A reconciliation of the provider's balance transactions with the ledger over a local date
# range: the worker fetches a page of transactions per step (``cursor`` is the provider's), so a
# stopped worker resumes after the last page it committed; ``report`` holds every mismatch.
reconciliations = sa.Table(
    "payment_reconciliations",
    metadata,
    uuid_pk(),
    sa.Column("requested_by", sa.String(100), nullable=False),
    sa.Column("first_day", sa.Date, nullable=False),
    sa.Column("last_day", sa.Date, nullable=False),
    sa.Column("time_zone", sa.String(64), nullable=False),
    timestamp("range_start", nullable=False),
    timestamp("range_end", nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="queued"),
    sa.Column("cursor", sa.String(255)),
    sa.Column("fetched", sa.Integer, nullable=False, server_default="0"),
    sa.Column("matched", sa.Integer, nullable=False, server_default="0"),
    sa.Column("report", JSONB),
    sa.Column("error", sa.Text),
    timestamp("due_at", nullable=False, server_default=sa.func.now()),
    created_at(),
    timestamp("finished_at"),
    sa.CheckConstraint("status IN ('queued', 'running', 'done')", name="status"),
    sa.Index("ix_payment_reconciliations_due", "due_at", postgresql_where=sa.text("status <> 'done'")),
    info={"plugin": "disputes"},
)

# The provider's transactions a reconciliation fetched, once each however often a page is re-read.
reconciliation_txns = sa.Table(
    "payment_reconciliation_txns",
    metadata,
    sa.Column("run_id", UUID(as_uuid=True), sa.ForeignKey("payment_reconciliations.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("txn_id", sa.String(255), primary_key=True),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    sa.Column("fee_cents", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    timestamp("created", nullable=False),
    sa.Column("source_id", sa.String(255)),
    sa.Column("intent_id", sa.String(255)),
    sa.Column("payment_id", sa.String(64)),
    sa.Column("booking_id", sa.String(64)),
    info={"plugin": "disputes"},
)

# A bulk refund or capture: its items are worked one per transaction by the worker, each
# committed with the money it moved, so one failing never blocks the others and none repeats.
bulk_jobs = sa.Table(
    "payment_bulk_jobs",
    metadata,
    uuid_pk(),
    sa.Column("requested_by", sa.String(100), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="queued"),
    sa.Column("total", sa.Integer, nullable=False),
    created_at(),
    timestamp("finished_at"),
    sa.CheckConstraint("action IN ('refund', 'capture')", name="action"),
    sa.CheckConstraint("status IN ('queued', 'running', 'done')", name="status"),
    info={"plugin": "disputes"},
)

bulk_items = sa.Table(
    "payment_bulk_items",
    metadata,
    sa.Column("job_id", UUID(as_uuid=True), sa.ForeignKey("payment_bulk_jobs.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("deposit_id", UUID(as_uuid=True), nullable=False),
    sa.Column("idempotency_key", sa.String(200), nullable=False),
    sa.Column("amount_cents", sa.BigInteger),
    sa.Column("payment_method", sa.String(255)),
    sa.Column("reason", sa.Text),
    sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("result", JSONB),
    sa.Column("error", JSONB),
    timestamp("finished_at"),
    sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="status"),
    sa.Index("ix_payment_bulk_items_pending", "job_id", "seq", postgresql_where=sa.text("status = 'pending'")),
    info={"plugin": "disputes"},
)
