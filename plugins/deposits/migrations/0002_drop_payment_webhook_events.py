"""payment_webhook_events goes: the core's webhook hub records each Stripe event once

Revision ID: deposits_0002
Revises: deposits_0001
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "deposits_0002"
down_revision: Union[str, Sequence[str], None] = "deposits_0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # A Stripe event replayed across the upgrade reaches the handler again; deposits only
    # move forward, so it changes nothing.
    op.drop_table("payment_webhook_events")


def downgrade() -> None:
    op.create_table(
        "payment_webhook_events",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("deposit_id", sa.UUID(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["deposit_id"], ["deposits.id"], name=op.f("fk_payment_webhook_events_deposit_id_deposits"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_webhook_events")),
        info={"plugin": "deposits"},
    )
