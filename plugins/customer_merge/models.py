"""The merge plugin's table: one tombstone per merged-away customer."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

from myhibachi.core import created_at, metadata

OWNER = {"plugin": "customer_merge"}

customer_merges = sa.Table(
    "customer_merges",
    metadata,
    sa.Column("source_id", UUID(as_uuid=True), sa.ForeignKey("customers.id"), primary_key=True),
    sa.Column("target_id", UUID(as_uuid=True), sa.ForeignKey("customers.id"), nullable=False),
    sa.Column("actor_kind", sa.String(20), nullable=False),
    sa.Column("actor_id", sa.String(64)),
    # which profile fields came from the source: {"phone": "only the source had one"}
    sa.Column("taken", JSONB, nullable=False),
    sa.Column("bookings_moved", sa.Integer, nullable=False),
    created_at(),
    sa.Index("ix_customer_merges_target", "target_id"),
    info=OWNER,
)
