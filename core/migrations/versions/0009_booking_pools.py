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
    # Which pools existing bookings draw on is for the plugins that limit them to say
    # (the locations plugin's own migration fills in its pools).
    op.add_column("bookings", sa.Column("pools", ARRAY(sa.String), nullable=False, server_default="{}"))


def downgrade() -> None:
    op.drop_column("bookings", "pools")
