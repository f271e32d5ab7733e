"""bookings: cancellation reason and row-level guards

Revision ID: core_bookings
Revises: core_0001
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "core_bookings"
down_revision: Union[str, Sequence[str], None] = "core_0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("bookings", sa.Column("cancel_reason", sa.Text(), nullable=True))
    op.create_check_constraint(op.f("ck_bookings_total_not_negative"), "bookings", "total_cents >= 0")
    op.create_check_constraint(op.f("ck_bookings_status_known"), "bookings",
                               "status IN ('pending', 'confirmed', 'cancelled', 'completed')")
    op.create_check_constraint(op.f("ck_bookings_party_size_sum"), "bookings", "party_size = adults + children")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_bookings_party_size_sum"), "bookings", type_="check")
    op.drop_constraint(op.f("ck_bookings_status_known"), "bookings", type_="check")
    op.drop_constraint(op.f("ck_bookings_total_not_negative"), "bookings", type_="check")
    op.drop_column("bookings", "cancel_reason")
