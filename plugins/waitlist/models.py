"""Tables of waitlist: the entries, and the offers that hold a freed slot for one of them."""
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from myhibachi.core import created_at, metadata, tables, timestamp, uuid_pk

OWNER = {"plugin": "waitlist"}
WAITING = ("active", "offered")

entries = sa.Table(
    "booking_waitlist",
    metadata,
    uuid_pk(),
    sa.Column("customer_id", sa.UUID, sa.ForeignKey(tables.customers.c.id, ondelete="CASCADE"), nullable=False,
              index=True),
    sa.Column("requested_date", sa.Date, nullable=False),
    sa.Column("requested_time", sa.String(5)),  # HH:MM local, or None: any time that day
    sa.Column("time_zone", sa.Text, nullable=False),
    sa.Column("party_size", sa.Integer, nullable=False),
    sa.Column("zip_code", sa.String(10)),
    sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
    # active, offered (a slot is held for it), converted, expired, lapsed (an offer ran out), cancelled
    sa.Column("status", sa.String(20), nullable=False, server_default="active"),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("converted_booking_id", sa.UUID, sa.ForeignKey(tables.bookings.c.id)),
    created_at(),
    timestamp("updated_at", nullable=False, server_default=sa.func.now()),
    sa.Index("ix_booking_waitlist_queue", "requested_date", "status", sa.text("priority DESC"), "created_at"),
    sa.Index("uq_booking_waitlist_waiting", "customer_id", "requested_date", sa.text("coalesce(requested_time, '')"),
             unique=True, postgresql_where=sa.text("status IN ('active', 'offered')")),
    info=OWNER,
)

offers = sa.Table(
    "waitlist_offers",
    metadata,
    uuid_pk(),
    sa.Column("entry_id", sa.UUID, sa.ForeignKey(entries.c.id, ondelete="CASCADE"), nullable=False),
    sa.Column("customer_id", sa.UUID, nullable=False),
    sa.Column("freed_by", sa.UUID),  # the cancelled booking whose place this is
    sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("time_zone", sa.Text, nullable=False),
    # the pools the freed booking drew on: the hold (core booking_holds, same id) counts in them
    sa.Column("pools", ARRAY(sa.Text), nullable=False, server_default="{}"),
    # offered (held), accepted, lapsed, withdrawn
    sa.Column("status", sa.String(20), nullable=False, server_default="offered"),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    created_at(),
    sa.Index("ix_waitlist_offers_held", "starts_at", postgresql_where=sa.text("status = 'offered'")),
    sa.Index("uq_waitlist_offers_entry", "entry_id", unique=True, postgresql_where=sa.text("status = 'offered'")),
    info=OWNER,
)
