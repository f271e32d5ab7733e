"""waitlist entries and offers

Revision ID: waitlist_0001
Revises:
Create Date: 2026-12-04
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision: str = "waitlist_0001"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = ("waitlist",)
depends_on: Union[str, Sequence[str], None] = "core_booking_pools"


def upgrade() -> None:
    op.create_table(
        "booking_waitlist",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("customer_id", sa.UUID(), nullable=False),
        sa.Column("requested_date", sa.Date(), nullable=False),
        sa.Column("requested_time", sa.String(5), nullable=True),
        sa.Column("time_zone", sa.Text(), nullable=False),
        sa.Column("party_size", sa.Integer(), nullable=False),
        sa.Column("zip_code", sa.String(10), nullable=True),
        sa.Column("priority", sa.Integer(), server_default="0", nullable=False),
        sa.Column("status", sa.String(20), server_default="active", nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("converted_booking_id", sa.UUID(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], ondelete="CASCADE",
                                name=op.f("fk_booking_waitlist_customer_id_customers")),
        sa.ForeignKeyConstraint(["converted_booking_id"], ["bookings.id"],
                                name=op.f("fk_booking_waitlist_converted_booking_id_bookings")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booking_waitlist")),
    )
    op.create_index(op.f("ix_booking_waitlist_customer_id"), "booking_waitlist", ["customer_id"])
    op.create_index("ix_booking_waitlist_queue", "booking_waitlist",
                    ["requested_date", "status", sa.text("priority DESC"), "created_at"])
    op.create_index("uq_booking_waitlist_waiting", "booking_waitlist",
                    ["customer_id", "requested_date", sa.text("coalesce(requested_time, '')")], unique=True,
                    postgresql_where=sa.text("status IN ('active', 'offered')"))
    op.create_table(
        "waitlist_offers",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("entry_id", sa.UUID(), nullable=False),
        sa.Column("customer_id", sa.UUID(), nullable=False),
        sa.Column("freed_by", sa.UUID(), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("time_zone", sa.Text(), nullable=False),
        sa.Column("pools", ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("status", sa.String(20), server_default="offered", nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["entry_id"], ["booking_waitlist.id"], ondelete="CASCADE",
                                name=op.f("fk_waitlist_offers_entry_id_booking_waitlist")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waitlist_offers")),
    )
    op.create_index("ix_waitlist_offers_held", "waitlist_offers", ["starts_at"],
                    postgresql_where=sa.text("status = 'offered'"))
    op.create_index("uq_waitlist_offers_entry", "waitlist_offers", ["entry_id"], unique=True,
                    postgresql_where=sa.text("status = 'offered'"))


def downgrade() -> None:
    op.drop_table("waitlist_offers")
    op.drop_table("booking_waitlist")
