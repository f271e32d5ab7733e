"""bookings.pools: the capacity pools a booking draws on, one per plugin limit

Revision ID: core_booking_pools
Revises: core_webhooks
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision: str = "core_booking_pools"
down_revision: Union[str, Sequence[str], None] = "core_webhooks"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("bookings", sa.Column("pools", ARRAY(sa.String), nullable=False, server_default="{}"))
    # A scoped slot key was "<location id hex>:<start>": that location's pool.
    op.execute("UPDATE bookings SET pools = ARRAY['location:' || split_part(slot_key, ':', 1)] "
               "WHERE slot_key ~ '^[0-9a-f]{32}:'")


def downgrade() -> None:
    op.drop_column("bookings", "pools")
