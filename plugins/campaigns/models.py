"""Campaigns and their recipients: one row per customer a campaign reaches, claimed in batches."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

from myhibachi.core import created_at, metadata, timestamp, uuid_pk

OWNER = {"plugin": "campaigns"}

# scheduled: waiting for its time; sending: recipients listed and being handed to comms; done.
STATUSES = ("scheduled", "sending", "done", "cancelled")
METRICS = ("opened", "clicked", "converted")

campaigns = sa.Table(
    "campaigns",
    metadata,
    uuid_pk(),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("list_id", UUID(as_uuid=True), nullable=False),
    sa.Column("channel", sa.String(10), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    # [{"name", "share" (percent of the audience), "template_key" | "subject"/"text"/"html"}]
    sa.Column("variants", JSONB, nullable=False),
    sa.Column("variables", JSONB, nullable=False, server_default="{}"),
    timestamp("send_at", nullable=False),  # the instant, or the wall-clock time read in UTC (local)
    sa.Column("local_time", sa.Boolean, nullable=False, server_default="false"),
    sa.Column("time_zone", sa.String(64), nullable=False, server_default="UTC"),
    sa.Column("max_per_minute", sa.Integer),
    sa.Column("status", sa.String(20), nullable=False, server_default="scheduled"),
    timestamp("due_at", nullable=False),  # when a worker lists the recipients
    sa.Column("recipients", sa.Integer),
    # A/B test: the metric, when to decide, and what was decided
    sa.Column("metric", sa.String(20)),
    timestamp("decide_at"),
    sa.Column("remainder_to_winner", sa.Boolean, nullable=False, server_default="false"),
    sa.Column("winner", sa.String(40)),
    sa.Column("decision", JSONB(none_as_null=True)),
    timestamp("decided_at"),
    sa.Column("conversion_days", sa.Integer, nullable=False, server_default="7"),
    sa.Column("created_by", sa.String(200)),
    created_at(),
    timestamp("updated_at", nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint(f"status IN {STATUSES}", name="status"),
    sa.CheckConstraint("channel IN ('sms', 'email')", name="channel"),
    sa.CheckConstraint(f"metric IS NULL OR metric IN {METRICS}", name="metric"),
    sa.Index("ix_campaigns_due", "due_at", postgresql_where=sa.text("status = 'scheduled'")),
    sa.Index("ix_campaigns_decide", "decide_at", postgresql_where=sa.text("decided_at IS NULL")),
    info=OWNER,
)

campaign_recipients = sa.Table(
    "campaign_recipients",
    metadata,
    uuid_pk(),
    sa.Column("campaign_id", UUID(as_uuid=True), sa.ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False),
    sa.Column("customer_id", UUID(as_uuid=True), sa.ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    sa.Column("variant", sa.String(40)),  # None: held for the A/B test's winner
    # pending (due), held (waits for the winner), sent (handed to comms), refused (comms said no)
    sa.Column("status", sa.String(10), nullable=False),
    timestamp("due_at", nullable=False),
    sa.Column("message_id", UUID(as_uuid=True)),
    sa.Column("error", sa.Text),
    timestamp("queued_at"),
    timestamp("opened_at"),
    timestamp("clicked_at"),
    timestamp("converted_at"),
    sa.Column("booking_id", UUID(as_uuid=True)),
    sa.CheckConstraint("status IN ('pending', 'held', 'sent', 'refused')", name="status"),
    sa.UniqueConstraint("campaign_id", "customer_id", name="uq_campaign_recipients_customer"),
    sa.Index("ix_campaign_recipients_due", "due_at", postgresql_where=sa.text("status = 'pending'")),
    sa.Index("ix_campaign_recipients_converting", "customer_id", postgresql_where=sa.text("converted_at IS NULL")),
    info=OWNER,
)
