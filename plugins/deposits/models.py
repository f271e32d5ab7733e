"""The deposits plugin's tables."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

from myhibachi.core import created_at, metadata, timestamp, uuid_pk

OWNER = {"plugin": "deposits"}

KINDS = ("deposit", "balance")
STATUSES = ("requires_payment", "processing", "succeeded", "partially_refunded", "refunded", "cancelled", "failed")

deposits = sa.Table(
    "deposits",
    metadata,
    uuid_pk(),
    sa.Column("booking_id", UUID(as_uuid=True), sa.ForeignKey("bookings.id", ondelete="RESTRICT"), nullable=False),
    sa.Column("customer_id", UUID(as_uuid=True), sa.ForeignKey("customers.id", ondelete="RESTRICT"), nullable=False),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    # the deposit held the booking; a balance is the rest paid after it (POST /v1/payments/balance)
    sa.Column("kind", sa.String(8), nullable=False, server_default="deposit"),
    sa.Column("status", sa.String(24), nullable=False, server_default="requires_payment"),
    # a split bill: the payer's share this deposit is, of how many shares the booking's bill has
    sa.Column("share", sa.String(200)),
    sa.Column("shares", sa.SmallInteger),
    sa.Column("intent_id", sa.String(255), nullable=False),
    sa.Column("client_secret", sa.String(255)),
    sa.Column("payment_method", sa.String(255)),
    sa.Column("captured_cents", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("refunded_cents", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("failure_reason", sa.Text),
    created_at(),
    timestamp("updated_at", nullable=False, server_default=sa.func.now()),
    timestamp("succeeded_at"),
    sa.CheckConstraint(f"status IN {STATUSES}", name="status"),
    sa.CheckConstraint(f"kind IN {KINDS}", name="kind"),
    sa.CheckConstraint("amount_cents > 0", name="amount_positive"),
    sa.CheckConstraint("(share IS NULL) = (shares IS NULL) AND (shares IS NULL OR shares >= 1)",
                       name="share_of_shares"),
    sa.CheckConstraint("captured_cents >= 0 AND captured_cents <= amount_cents", name="captured_range"),
    sa.CheckConstraint("refunded_cents >= 0 AND refunded_cents <= captured_cents", name="refunded_range"),
    sa.UniqueConstraint("intent_id", name="uq_deposits_intent_id"),
    sa.Index("ix_deposits_booking", "booking_id"),
    sa.Index("ix_deposits_customer_created", "customer_id", "created_at"),
    sa.Index("ix_deposits_created", "created_at", "id"),
    sa.Index("ix_deposits_unsettled", "updated_at",
             postgresql_where=sa.text("status IN ('requires_payment', 'processing')")),
    info=OWNER,
)

deposit_refunds = sa.Table(
    "deposit_refunds",
    metadata,
    uuid_pk(),
    sa.Column("deposit_id", UUID(as_uuid=True), sa.ForeignKey("deposits.id", ondelete="CASCADE"), nullable=False),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("provider_refund_id", sa.String(255), nullable=False),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("reason", sa.Text),
    created_at(),
    sa.CheckConstraint("amount_cents > 0", name="amount_positive"),
    sa.Index("ix_deposit_refunds_deposit", "deposit_id", "created_at"),
    info=OWNER,
)

# Disputes as they arrive; the disputes plugin works them later.
payment_disputes = sa.Table(
    "payment_disputes",
    metadata,
    uuid_pk(),
    sa.Column("provider_dispute_id", sa.String(255), nullable=False),
    sa.Column("deposit_id", UUID(as_uuid=True), sa.ForeignKey("deposits.id", ondelete="SET NULL")),
    sa.Column("intent_id", sa.String(255)),
    sa.Column("charge_id", sa.String(255)),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("reason", sa.String(100)),
    sa.Column("status", sa.String(50)),
    sa.Column("raw", JSONB, nullable=False),
    created_at(),
    sa.UniqueConstraint("provider_dispute_id", name="uq_payment_disputes_provider_dispute_id"),
    info=OWNER,
)
