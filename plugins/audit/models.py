"""The append-only audit trail (triggers refuse UPDATE, DELETE and TRUNCATE; the app's role is granted
only SELECT and INSERT)."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

from myhibachi.core import metadata

OWN = {"plugin": "audit"}

audit_logs = sa.Table(
    "audit_logs",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    # Chain order: rows are appended under an advisory lock, so seq follows the chain.
    sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False),
    sa.Column("actor_kind", sa.String(20), nullable=False),
    sa.Column("actor_id", sa.String(64)),
    sa.Column("action", sa.String(200), nullable=False),
    sa.Column("permission", sa.String(100)),
    sa.Column("resource_type", sa.String(100), nullable=False),
    sa.Column("resource_id", sa.String(200)),
    sa.Column("changes", JSONB),
    sa.Column("method", sa.String(10)),
    sa.Column("path", sa.Text),
    sa.Column("ip", sa.String(45)),
    sa.Column("user_agent", sa.Text),
    sa.Column("request_id", sa.String(100)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.UniqueConstraint("seq", name="uq_audit_logs_seq"),
    sa.Index("ix_audit_logs_actor", "actor_id", "seq"),
    sa.Index("ix_audit_logs_resource", "resource_type", "resource_id", "seq"),
    sa.Index("ix_audit_logs_created", "created_at"),
    sa.Index("ix_audit_logs_action", "action", "seq"),
    # The app's database role may only read and append (see myhibachi.core.roles).
    info={**OWN, "append_only": True},
)
