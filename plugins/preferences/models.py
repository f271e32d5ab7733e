"""The preferences plugin's tables: the current preferences and every change to them."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

from myhibachi.core import created_at, metadata, timestamp, uuid_pk

OWNER = {"plugin": "preferences"}
FREQUENCIES = ("daily", "weekly", "monthly", "never")

# A customer without a row has the defaults of schemas.Preferences.
customer_preferences = sa.Table(
    "customer_preferences",
    metadata,
    sa.Column("customer_id", UUID(as_uuid=True), sa.ForeignKey("customers.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("email_marketing", sa.Boolean, nullable=False),
    sa.Column("email_transactional", sa.Boolean, nullable=False),
    sa.Column("sms_marketing", sa.Boolean, nullable=False),
    sa.Column("sms_transactional", sa.Boolean, nullable=False),
    sa.Column("marketing_frequency", sa.String(10), nullable=False),
    sa.Column("language", sa.String(35), nullable=False),
    sa.Column("time_zone", sa.String(64), nullable=False),
    sa.Column("quiet_start", sa.Time),
    sa.Column("quiet_end", sa.Time),
    timestamp("updated_at", nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint(f"marketing_frequency IN {FREQUENCIES}", name="marketing_frequency"),
    info=OWNER,
)

# Proof of consent: who changed what, when and through which channel. Never updated.
preference_changes = sa.Table(
    "customer_preference_changes",
    metadata,
    uuid_pk(),
    sa.Column("customer_id", UUID(as_uuid=True), sa.ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    sa.Column("actor_kind", sa.String(20), nullable=False),
    sa.Column("actor_id", sa.String(64)),
    sa.Column("source", sa.String(20), nullable=False),
    sa.Column("changes", JSONB, nullable=False),
    created_at(),
    sa.Index("ix_customer_preference_changes_customer", "customer_id", "created_at"),
    info=OWNER,
)
