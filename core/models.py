"""The core's tables. Plugins reference these rows; they never alter these tables."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSON, JSONB, UUID

from myhibachi.core.db import created_at, metadata, timestamp, uuid_pk

CORE = {"plugin": "core"}

customers = sa.Table(
    "customers",
    metadata,
    uuid_pk(),
    # PII is stored encrypted (see core.crypto); lookups go through keyed hashes.
    sa.Column("email_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("phone_hash", sa.LargeBinary(32)),
    sa.Column("email_enc", sa.Text, nullable=False),
    sa.Column("phone_enc", sa.Text),
    sa.Column("name_enc", sa.Text, nullable=False),
    sa.Column("address_enc", sa.Text),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("password_hash", sa.Text),
    sa.Column("status", sa.String(20), nullable=False, server_default="active"),
    created_at(),
    timestamp("updated_at", nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("email_hash", name="uq_customers_email_hash"),
    sa.Index("ix_customers_phone_hash", "phone_hash"),
    sa.Index("ix_customers_created_id", "created_at", "id"),
    info=CORE,
)

bookings = sa.Table(
    "bookings",
    metadata,
    uuid_pk(),
    sa.Column("customer_id", UUID(as_uuid=True), sa.ForeignKey("customers.id"), nullable=False),
    sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("time_zone", sa.String(64), nullable=False),
    sa.Column("duration_minutes", sa.Integer, nullable=False),
    sa.Column("party_size", sa.Integer, nullable=False),
    sa.Column("adults", sa.Integer, nullable=False),
    sa.Column("children", sa.Integer, nullable=False, server_default="0"),
    # The customer's address, menu and notes are sealed like a customer's PII (see
    # core.bookings.sealed); the zip code stays plain: service areas and segments match it in SQL.
    sa.Column("address_enc", sa.Text, nullable=False),
    sa.Column("zip_code", sa.String(10)),
    sa.Column("menu_enc", sa.Text),
    sa.Column("notes_enc", sa.Text),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("status", sa.String(20), nullable=False, server_default="pending"),
    sa.Column("price_lines", JSONB, nullable=False, server_default="[]"),
    sa.Column("total_cents", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False, server_default="USD"),
    sa.Column("slot_key", sa.String(64), nullable=False),
    # the pools of the plugins' limits (booking_limits) this booking counts against
    sa.Column("pools", ARRAY(sa.String), nullable=False, server_default="{}"),
    sa.Column("cancel_reason", sa.Text),
    created_at(),
    timestamp("updated_at", nullable=False, server_default=sa.func.now()),
    sa.Index("ix_bookings_customer_created", "customer_id", "created_at", "id"),
    sa.Index("ix_bookings_created_id", "created_at", "id"),
    sa.Index("ix_bookings_starts_at", "starts_at"),
    sa.Index("ix_bookings_slot_status", "slot_key", "status"),
    sa.CheckConstraint("total_cents >= 0", name="total_not_negative"),
    sa.CheckConstraint("status IN ('pending', 'confirmed', 'cancelled', 'completed')", name="status_known"),
    sa.CheckConstraint("party_size = adults + children", name="party_size_sum"),
    info=CORE,
)

# Serialises bookings of one slot: create takes this row FOR UPDATE before counting.
booking_slots = sa.Table(
    "booking_slots",
    metadata,
    sa.Column("slot_key", sa.String(64), primary_key=True),
    info=CORE,
)

# Places held that are not bookings (a waitlist offer's): they count in their pools like an
# active booking until they expire or are released, except for the customer they are held for.
booking_holds = sa.Table(
    "booking_holds",
    metadata,
    sa.Column("id", sa.UUID, primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("customer_id", sa.UUID),
    sa.Column("pools", ARRAY(sa.Text), nullable=False, server_default="{}"),
    timestamp("starts_at", nullable=False),
    timestamp("ends_at", nullable=False),
    timestamp("expires_at", nullable=False),
    created_at(),
    sa.Index("ix_booking_holds_starts_at", "starts_at"),
    info=CORE,
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    uuid_pk(),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("prefix", sa.String(16), nullable=False, unique=True),
    sa.Column("key_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("scopes", JSONB, nullable=False, server_default="[]"),
    sa.Column("created_by", sa.String(64)),
    timestamp("expires_at"),
    timestamp("revoked_at"),
    timestamp("last_used_at"),
    created_at(),
    info=CORE,
)

refresh_tokens = sa.Table(
    "refresh_tokens",
    metadata,
    uuid_pk(),
    sa.Column("subject", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("token_hash", sa.LargeBinary(32), nullable=False, unique=True),
    sa.Column("family", UUID(as_uuid=True), nullable=False),
    timestamp("expires_at", nullable=False),
    timestamp("used_at"),
    timestamp("revoked_at"),
    created_at(),
    sa.Index("ix_refresh_tokens_subject", "subject"),
    sa.Index("ix_refresh_tokens_family", "family"),
    info=CORE,
)

outbox_events = sa.Table(
    "outbox_events",
    metadata,
    uuid_pk(),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("payload", JSONB, nullable=False),
    sa.Column("actor", sa.String(100)),
    # Who is to get the event, until the dispatcher has made their delivery rows.
    sa.Column("subscribers", ARRAY(sa.String(200))),
    created_at(),
    timestamp("dispatched_at"),
    sa.Index("ix_outbox_events_pending", "created_at", postgresql_where=sa.text("dispatched_at IS NULL")),
    info=CORE,
)

event_deliveries = sa.Table(
    "event_deliveries",
    metadata,
    sa.Column("event_id", UUID(as_uuid=True), sa.ForeignKey("outbox_events.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("subscriber", sa.String(200), primary_key=True),
    sa.Column("status", sa.String(20), nullable=False),  # pending | done | skipped | dead
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    timestamp("next_attempt_at", nullable=False, server_default=sa.func.now()),
    timestamp("done_at"),
    sa.Index("ix_event_deliveries_due", "next_attempt_at", postgresql_where=sa.text("status = 'pending'")),
    info=CORE,
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("scope", sa.String(200), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("response", JSON),  # json keeps the first answer's key order for its replays
    created_at(),
    timestamp("expires_at", nullable=False),
    info=CORE,
)

# Each provider webhook event once (the hub's dedupe), its body sealed: it holds phone
# numbers, addresses and message text.
webhook_events = sa.Table(
    "webhook_events",
    metadata,
    uuid_pk(),
    sa.Column("provider", sa.String(20), nullable=False),
    sa.Column("event_id", sa.String(255), nullable=False),
    sa.Column("type", sa.String(100), nullable=False),
    sa.Column("data_enc", sa.Text, nullable=False),
    sa.Column("key_id", sa.String(32), nullable=False),
    timestamp("received_at", nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("provider", "event_id", name="uq_webhook_events_provider_event_id"),
    info=CORE,
)

# What the offline adapters would have sent: the embedded default's outside world.
offline_outbox = sa.Table(
    "offline_outbox",
    metadata,
    uuid_pk(),
    sa.Column("port", sa.String(30), nullable=False),
    sa.Column("operation", sa.String(60), nullable=False),
    sa.Column("payload", JSONB, nullable=False),
    created_at(),
    sa.Index("ix_offline_outbox_port", "port", "created_at"),
    info=CORE,
)

# The offline payments adapter's PaymentIntents, so its state machine survives restarts.
offline_payments = sa.Table(
    "offline_payments",
    metadata,
    uuid_pk(),
    sa.Column("idempotency_key", sa.String(200), nullable=False),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("status", sa.String(40), nullable=False),
    sa.Column("payment_method", sa.String(100)),
    sa.Column("last_error", sa.Text),
    sa.Column("metadata", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("amount_refunded_cents", sa.BigInteger, nullable=False, server_default="0"),
    # [{"id", "amount_cents", "idempotency_key"}]: a refund retried with its key is not repeated.
    sa.Column("refunds", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    created_at(),
    timestamp("updated_at", nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("idempotency_key", name="uq_offline_payments_idempotency_key"),
    info=CORE,
)

# One row per periodic job (core.scheduled.periodic): its next run, claimed FOR UPDATE SKIP
# LOCKED, so many workers run each period once and a restart loses nothing.
periodic_jobs = sa.Table(
    "periodic_jobs",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    timestamp("next_run_at", nullable=False),
    timestamp("last_run_at"),
    sa.Column("last_error", sa.Text),
    info=CORE,
)
