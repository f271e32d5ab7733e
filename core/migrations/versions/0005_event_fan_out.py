"""outbox_events.subscribers: the dispatcher makes the delivery rows, not the publisher

Revision ID: core_event_fan_out
Revises: core_customers
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision: str = "core_event_fan_out"
down_revision: Union[str, Sequence[str], None] = "core_customers"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("outbox_events", sa.Column("subscribers", ARRAY(sa.String(200)), nullable=True))


def downgrade() -> None:
    # Events still waiting for their fan-out get their delivery rows first.
    op.execute("INSERT INTO event_deliveries (event_id, subscriber, status) "
               "SELECT e.id, s, 'pending' FROM outbox_events e, unnest(e.subscribers) AS s "
               "WHERE e.dispatched_at IS NULL ON CONFLICT DO NOTHING")
    op.drop_column("outbox_events", "subscribers")
