"""recurring patterns and instances

Revision ID: recurring_0001
Revises:
Create Date: 2026-12-03
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "recurring_0001"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = ("recurring",)
depends_on: Union[str, Sequence[str], None] = "core_booking_pools"


def upgrade() -> None:
    op.create_table(
        "recurring_event_patterns",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("customer_id", sa.UUID(), nullable=False),
        sa.Column("recurrence_rule", sa.Text(), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("local_time", sa.Time(), nullable=False),
        sa.Column("time_zone", sa.Text(), nullable=False),
        sa.Column("adults", sa.Integer(), nullable=False),
        sa.Column("children", sa.Integer(), server_default="0", nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("zip_code", sa.Text(), nullable=True),
        sa.Column("special_requests", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), server_default="active", nullable=False),
        sa.Column("materialised_until", sa.Date(), nullable=False),
        sa.Column("conflicts", JSONB(), server_default="[]", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"],
                                name=op.f("fk_recurring_event_patterns_customer_id_customers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recurring_event_patterns")),
    )
    op.create_index(op.f("ix_recurring_event_patterns_customer_id"), "recurring_event_patterns", ["customer_id"])
    op.create_table(
        "recurring_instances",
        sa.Column("pattern_id", sa.UUID(), nullable=False),
        sa.Column("occurrence_date", sa.Date(), nullable=False),
        sa.Column("booking_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(["pattern_id"], ["recurring_event_patterns.id"], ondelete="CASCADE",
                                name=op.f("fk_recurring_instances_pattern_id_recurring_event_patterns")),
        sa.ForeignKeyConstraint(["booking_id"], ["bookings.id"], name=op.f("fk_recurring_instances_booking_id_bookings")),
        sa.PrimaryKeyConstraint("pattern_id", "occurrence_date", name=op.f("pk_recurring_instances")),
        sa.UniqueConstraint("booking_id", name=op.f("uq_recurring_instances_booking_id")),
    )


def downgrade() -> None:
    op.drop_table("recurring_instances")
    op.drop_table("recurring_event_patterns")
