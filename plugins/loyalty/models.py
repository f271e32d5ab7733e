"""The loyalty plugin's tables: one account per customer and its append-only ledger."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

from myhibachi.core import created_at, metadata, timestamp, uuid_pk

OWNER = {"plugin": "loyalty"}

TIERS = ("bronze", "silver", "gold", "platinum")
TYPES = ("earn", "redeem", "unredeem", "refund", "expire", "adjustment")
# A transaction that adds points is a lot: 'open' while it has points left and has not expired.
LOT_STATUSES = ("open", "spent", "expired")

loyalty_accounts = sa.Table(
    "loyalty_accounts",
    metadata,
    uuid_pk(),
    sa.Column("customer_id", UUID(as_uuid=True), sa.ForeignKey("customers.id", ondelete="CASCADE"),
              nullable=False, unique=True),
    # The sum of the ledger, kept here for reads; `myhibachi loyalty verify` checks they agree.
    sa.Column("points_balance", sa.Integer, nullable=False, server_default="0"),
    sa.Column("lifetime_points", sa.Integer, nullable=False, server_default="0"),
    # Points a refund could not take back because they were already spent; paid from later earnings.
    sa.Column("points_debt", sa.Integer, nullable=False, server_default="0"),
    sa.Column("tier", sa.String(20), nullable=False, server_default="bronze"),
    created_at(),
    timestamp("updated_at", nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint("points_balance >= 0", name="balance_not_negative"),
    sa.CheckConstraint("lifetime_points >= 0", name="lifetime_not_negative"),
    sa.CheckConstraint("points_debt >= 0", name="debt_not_negative"),
    sa.CheckConstraint(f"tier IN {TIERS}", name="tier"),
    info=OWNER,
)

loyalty_transactions = sa.Table(
    "loyalty_transactions",
    metadata,
    uuid_pk(),
    # Ledger order (created_at comes from the caller's clock and repeats within one operation).
    sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False, unique=True),
    sa.Column("account_id", UUID(as_uuid=True), sa.ForeignKey("loyalty_accounts.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("booking_id", UUID(as_uuid=True), sa.ForeignKey("bookings.id", ondelete="SET NULL")),
    sa.Column("transaction_type", sa.String(20), nullable=False),
    sa.Column("points", sa.Integer, nullable=False),
    sa.Column("balance_after", sa.Integer, nullable=False),
    # Added to the account's points_debt: what a refund could not take back (the debt is their sum).
    sa.Column("debt_points", sa.Integer, nullable=False, server_default="0"),
    sa.Column("description", sa.Text),
    # What caused it ("payment:<id>", "refund:<id>", "booking:<id>" ...): an event handled twice earns once.
    sa.Column("source_key", sa.String(200), unique=True),
    sa.Column("payment_id", sa.String(200)),
    sa.Column("amount_cents", sa.BigInteger),
    # Lots only: points not yet spent or expired, and when they expire.
    sa.Column("remaining", sa.Integer, nullable=False, server_default="0"),
    timestamp("expires_at"),
    sa.Column("lot_status", sa.String(10)),
    # Redemptions and debits: which lots they took points from, [[lot_id, points], ...], to give them back.
    sa.Column("lots", JSONB),
    sa.Column("actor", sa.String(64)),
    timestamp("created_at", nullable=False),
    sa.CheckConstraint(f"transaction_type IN {TYPES}", name="transaction_type"),
    sa.CheckConstraint("balance_after >= 0", name="balance_after_not_negative"),
    sa.CheckConstraint("remaining >= 0 AND remaining <= GREATEST(points, 0)", name="remaining_within_lot"),
    sa.CheckConstraint(f"lot_status IS NULL OR lot_status IN {LOT_STATUSES}", name="lot_status"),
    sa.Index("ix_loyalty_transactions_account", "account_id", "seq"),
    sa.Index("ix_loyalty_transactions_due", "expires_at", postgresql_where=sa.text("lot_status = 'open'")),
    sa.Index("ix_loyalty_transactions_payment", "payment_id", postgresql_where=sa.text("payment_id IS NOT NULL")),
    sa.Index("ix_loyalty_transactions_booking", "booking_id", postgresql_where=sa.text("booking_id IS NOT NULL")),
    info=OWNER,
)
