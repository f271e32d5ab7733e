"""The comms plugin's tables: messages, opt-outs and marketing consent."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID

from myhibachi.core import created_at, metadata, timestamp, uuid_pk

OWNER = {"plugin": "comms"}

CHANNELS = ("sms", "email")
KINDS = ("transactional", "marketing")
# 'sending': committed as taken before the provider is called, so a crash never re-sends.
STATUSES = ("queued", "sending", "sent", "delivered", "failed", "bounced")

comms_messages = sa.Table(
    "comms_messages",
    metadata,
    uuid_pk(),
    sa.Column("channel", sa.String(10), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("customer_id", UUID(as_uuid=True), sa.ForeignKey("customers.id", ondelete="SET NULL")),
    # recipient, subject and body are sealed like customer PII; to_hash finds opt-outs.
    sa.Column("key_id", sa.String(40), nullable=False),
    sa.Column("to_enc", sa.Text, nullable=False),
    sa.Column("to_hash", sa.LargeBinary, nullable=False),
    sa.Column("subject_enc", sa.Text),
    sa.Column("body_enc", sa.Text, nullable=False),
    sa.Column("html_enc", sa.Text),
    sa.Column("segments", sa.Integer),
    sa.Column("encoding", sa.String(10)),
    sa.Column("status", sa.String(20), nullable=False, server_default="queued"),
    sa.Column("provider_id", sa.String(200)),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Column("idempotency_key", sa.String(300)),
    sa.Column("created_by", sa.String(200)),
    # the template (and its version) the sender rendered, when one was used
    sa.Column("template_id", UUID(as_uuid=True)),
    sa.Column("template_version", sa.Integer),
    timestamp("next_attempt_at", nullable=False, server_default=sa.func.now()),
    timestamp("sent_at"),
    timestamp("delivered_at"),
    created_at(),
    timestamp("updated_at", nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint(f"channel IN {CHANNELS}", name="channel"),
    sa.CheckConstraint(f"kind IN {KINDS}", name="kind"),
    sa.CheckConstraint(f"status IN {STATUSES}", name="status"),
    sa.Index("uq_comms_messages_idempotency_key", "idempotency_key", unique=True),
    sa.Index("ix_comms_messages_history", "channel", "created_at", "id"),
    sa.Index("ix_comms_messages_customer", "customer_id", "created_at"),
    sa.Index("ix_comms_messages_provider", "provider_id"),
    sa.Index("ix_comms_messages_due", "next_attempt_at", postgresql_where=sa.text("status = 'queued'")),
    sa.Index("ix_comms_messages_sending", "updated_at", postgresql_where=sa.text("status = 'sending'")),
    info=OWNER,
)

comms_opt_outs = sa.Table(
    "comms_opt_outs",
    metadata,
    # the keyed hash of the E.164 number (or email address): the list never holds the address.
    sa.Column("address_hash", sa.LargeBinary, primary_key=True),
    sa.Column("channel", sa.String(10), primary_key=True),
    sa.Column("opted_out", sa.Boolean, nullable=False),
    sa.Column("keyword", sa.String(40)),
    created_at(),
    timestamp("updated_at", nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint(f"channel IN {CHANNELS}", name="channel"),
    info=OWNER,
)

# Marketing consent per customer and channel; the preferences plugin may take it over.
comms_consents = sa.Table(
    "comms_consents",
    metadata,
    sa.Column("customer_id", UUID(as_uuid=True), sa.ForeignKey("customers.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("channel", sa.String(10), primary_key=True),
    sa.Column("marketing", sa.Boolean, nullable=False),
    sa.Column("source", sa.String(100)),
    timestamp("updated_at", nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint(f"channel IN {CHANNELS}", name="channel"),
    info=OWNER,
)
