"""The templates and their versions: an edit adds a version, a sent message names the one it used."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from myhibachi.core import created_at, metadata, timestamp, uuid_pk

OWNER = {"plugin": "comm_templates"}

comm_templates = sa.Table(
    "comm_templates",
    metadata,
    uuid_pk(),
    sa.Column("key", sa.String(100), nullable=False),
    sa.Column("channel", sa.String(10), nullable=False),
    sa.Column("language", sa.String(10), nullable=False),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    timestamp("deleted_at"),
    created_at(),
    timestamp("updated_at", nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint("channel IN ('sms', 'email')", name="channel"),
    # one live template per key, channel and language; deleted ones keep their versions
    sa.Index("uq_comm_templates_live_key", "key", "channel", "language", unique=True,
             postgresql_where=sa.text("deleted_at IS NULL")),
    info=OWNER,
)

comm_template_versions = sa.Table(
    "comm_template_versions",
    metadata,
    sa.Column("template_id", UUID(as_uuid=True), sa.ForeignKey("comm_templates.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("subject", sa.Text),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("html", sa.Text),
    sa.Column("variables", ARRAY(sa.String(50)), nullable=False),
    sa.Column("created_by", sa.String(200)),
    created_at(),
    info=OWNER,
)
