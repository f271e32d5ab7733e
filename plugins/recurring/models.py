"""Tables of recurring: the patterns, and which core booking is which occurrence."""
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from myhibachi.core import created_at, metadata, tables, uuid_pk

OWNER = {"plugin": "recurring"}

patterns = sa.Table(
    "recurring_event_patterns",
    metadata,
    uuid_pk(),
    sa.Column("customer_id", sa.UUID, sa.ForeignKey(tables.customers.c.id), nullable=False, index=True),
    sa.Column("recurrence_rule", sa.Text, nullable=False),
    sa.Column("start_date", sa.Date, nullable=False),
    sa.Column("local_time", sa.Time, nullable=False),
    sa.Column("time_zone", sa.Text, nullable=False),
    sa.Column("adults", sa.Integer, nullable=False),
    sa.Column("children", sa.Integer, nullable=False, server_default="0"),
    # copies of the bookings' sealed fields, sealed the same way (service.sealed); the zip code stays plain as theirs
    sa.Column("address_enc", sa.Text, nullable=False),
    sa.Column("zip_code", sa.Text),
    sa.Column("special_requests_enc", sa.Text),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="active"),
    # occurrences up to this date have been tried (created or reported as conflicts)
    sa.Column("materialised_until", sa.Date, nullable=False),
    sa.Column("conflicts", JSONB, nullable=False, server_default="[]"),
    created_at(),
    info=OWNER,
)

instances = sa.Table(
    "recurring_instances",
    metadata,
    sa.Column("pattern_id", sa.UUID, sa.ForeignKey(patterns.c.id, ondelete="CASCADE"), primary_key=True),
    sa.Column("occurrence_date", sa.Date, primary_key=True),
    sa.Column("booking_id", sa.UUID, sa.ForeignKey(tables.bookings.c.id), nullable=False, unique=True),
    info=OWNER,
)
