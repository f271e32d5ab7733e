"""webhook_events: the provider webhook hub's record of each provider event, once

Revision ID: core_webhooks
Revises: core_periodic_jobs
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "core_webhooks"
down_revision: Union[str, Sequence[str], None] = "core_periodic_jobs"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("data_enc", sa.Text(), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
        sa.UniqueConstraint("provider", "event_id", name="uq_webhook_events_provider_event_id"),
        info={"plugin": "core"},
    )


def downgrade() -> None:
    op.drop_table("webhook_events")
