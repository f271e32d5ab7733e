"""The bulk export's tables: a job with its progress, and its output in encrypted chunks.

The output lives in the database, not on one host's disk, so any API process can serve the
download, and it holds decrypted PII: every chunk is sealed with the PII vault."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from myhibachi.core import created_at, metadata, timestamp, uuid_pk

OWNER = {"plugin": "customer_export"}
STATUSES = ("queued", "running", "done", "failed", "expired")

export_jobs = sa.Table(
    "customer_export_jobs",
    metadata,
    uuid_pk(),
    sa.Column("requested_by", sa.String(64), nullable=False),
    sa.Column("format", sa.String(8), nullable=False),
    sa.Column("status", sa.String(10), nullable=False, server_default="queued"),
    sa.Column("customer_ids", ARRAY(UUID(as_uuid=True))),  # null: every customer
    sa.Column("created_since", sa.DateTime(timezone=True)),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("done", sa.Integer, nullable=False, server_default="0"),
    # the last customer exported: a worker that stops resumes after it
    sa.Column("cursor", UUID(as_uuid=True)),
    sa.Column("chunks", sa.Integer, nullable=False, server_default="0"),
    sa.Column("bytes", sa.BigInteger, nullable=False, server_default="0"),
    # csv: each section's columns, fixed by its first row
    sa.Column("columns", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("error", sa.Text),
    created_at(),
    timestamp("finished_at"),
    timestamp("expires_at"),
    sa.CheckConstraint(f"status IN {STATUSES}", name="status"),
    sa.CheckConstraint("format IN ('json', 'csv')", name="format"),
    sa.Index("ix_customer_export_jobs_pending", "created_at", postgresql_where=sa.text("status IN ('queued', 'running')")),
    info=OWNER,
)

export_chunks = sa.Table(
    "customer_export_chunks",
    metadata,
    sa.Column("job_id", UUID(as_uuid=True), sa.ForeignKey("customer_export_jobs.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("section", sa.String(64), nullable=False),
    sa.Column("data", sa.Text, nullable=False),  # vault-sealed, gzip-compressed
    info=OWNER,
)
