"""The disputes plugin's table."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from myhibachi.core import created_at, metadata, timestamp, uuid_pk

disputes = sa.Table(
    "disputes",
    metadata,
    uuid_pk(),
    sa.Column("provider_dispute_id", sa.String(255), nullable=False),
    sa.Column("charge_id", sa.String(255)),
    sa.Column("intent_id", sa.String(255)),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("reason", sa.String(100)),
    sa.Column("status", sa.String(50), nullable=False),
    timestamp("due_by"),
    sa.Column("evidence", JSONB),
    timestamp("responded_at"),
    created_at(),
    timestamp("updated_at", nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("provider_dispute_id", name="uq_disputes_provider_dispute_id"),
    sa.Index("ix_disputes_created", "created_at", "id"),
    info={"plugin": "disputes"},
)
