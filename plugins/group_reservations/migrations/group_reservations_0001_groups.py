"""group reservations, guests and tables

Revision ID: group_reservations_0001
Revises:
Create Date: 2026-12-04
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision: str = "group_reservations_0001"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = ("group_reservations",)
depends_on: Union[str, Sequence[str], None] = "core_booking_pools"


def upgrade() -> None:
    op.create_table(
        "group_reservations",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("customer_id", sa.UUID(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("time_zone", sa.Text(), nullable=False),
        sa.Column("location_id", sa.UUID(), nullable=True),
        sa.Column("menu", JSONB(), nullable=False),
        sa.Column("billing", JSONB(), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], ondelete="CASCADE",
                                name=op.f("fk_group_reservations_customer_id_customers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_group_reservations")),
    )
    op.create_index(op.f("ix_group_reservations_customer_id"), "group_reservations", ["customer_id"])
    op.create_table(
        "group_reservation_guests",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("group_id", sa.UUID(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("table_no", sa.Integer(), nullable=False),
        sa.Column("name_enc", sa.Text(), nullable=False),
        sa.Column("contact_enc", sa.Text(), nullable=True),
        sa.Column("child", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("dietary", sa.Text(), nullable=True),
        sa.Column("allergens", ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("menu_choice", sa.Text(), nullable=False),
        sa.Column("payer", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["group_reservations.id"], ondelete="CASCADE",
                                name=op.f("fk_group_reservation_guests_group_id_group_reservations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_group_reservation_guests")),
    )
    op.create_index(op.f("ix_group_reservation_guests_group_id"), "group_reservation_guests", ["group_id"])
    op.create_table(
        "group_reservation_tables",
        sa.Column("group_id", sa.UUID(), nullable=False),
        sa.Column("table_no", sa.Integer(), nullable=False),
        sa.Column("booking_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["group_reservations.id"], ondelete="CASCADE",
                                name=op.f("fk_group_reservation_tables_group_id_group_reservations")),
        sa.ForeignKeyConstraint(["booking_id"], ["bookings.id"], name=op.f("fk_group_reservation_tables_booking_id_bookings")),
        sa.PrimaryKeyConstraint("group_id", "table_no", name=op.f("pk_group_reservation_tables")),
        sa.UniqueConstraint("booking_id", name=op.f("uq_group_reservation_tables_booking_id")),
    )


def downgrade() -> None:
    op.drop_table("group_reservation_tables")
    op.drop_table("group_reservation_guests")
    op.drop_table("group_reservations")
