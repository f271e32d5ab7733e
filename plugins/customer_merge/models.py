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

# A keyed hash of each customer's normalised name and address (the values themselves are
# sealed in the core's table), kept by the worker from customer events: what finds duplicates
# that share no phone number.
customer_match_keys = sa.Table(
    "customer_match_keys",
    metadata,
    sa.Column("customer_id", UUID(as_uuid=True), sa.ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("name_address", sa.LargeBinary(32), nullable=False),
    sa.Index("ix_customer_match_keys_name_address", "name_address"),
    info=OWNER,
)
