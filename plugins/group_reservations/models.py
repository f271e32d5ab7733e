"""Tables of group_reservations: the group, its guests (PII sealed) and its stations' bookings."""
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from myhibachi.core import created_at, metadata, tables, timestamp, uuid_pk

OWNER = {"plugin": "group_reservations"}

groups = sa.Table(
    "group_reservations",
    metadata,
    uuid_pk(),
    sa.Column("customer_id", sa.UUID, sa.ForeignKey(tables.customers.c.id, ondelete="CASCADE"), nullable=False,
              index=True),
    sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("time_zone", sa.Text, nullable=False),
    sa.Column("location_id", sa.UUID),  # the locations plugin's location its stations are at
    sa.Column("menu", JSONB, nullable=False),  # [{"code", "label", "surcharge_cents"}]
    sa.Column("billing", JSONB, nullable=False),  # {"split": "by_guest" | "by_amount", "payers": [...]}
    sa.Column("key_id", sa.Text, nullable=False),
    created_at(),
    timestamp("updated_at", nullable=False, server_default=sa.func.now()),
    info=OWNER,
)

guests = sa.Table(
    "group_reservation_guests",
    metadata,
    uuid_pk(),
    sa.Column("group_id", sa.UUID, sa.ForeignKey(groups.c.id, ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("position", sa.Integer, nullable=False),  # the guest's place in the list
    sa.Column("table_no", sa.Integer, nullable=False),
    sa.Column("name_enc", sa.Text, nullable=False),
    sa.Column("contact_enc", sa.Text),
    sa.Column("child", sa.Boolean, nullable=False, server_default="false"),
    # health data, sealed as the names are: the free text, and the allergens as a JSON list (None: none)
    sa.Column("dietary_enc", sa.Text),
    sa.Column("allergens_enc", sa.Text),
    sa.Column("menu_choice", sa.Text, nullable=False),
    sa.Column("payer", sa.Text, nullable=False),
    info=OWNER,
)

stations = sa.Table(
    "group_reservation_tables",
    metadata,
    sa.Column("group_id", sa.UUID, sa.ForeignKey(groups.c.id, ondelete="CASCADE"), primary_key=True),
    sa.Column("table_no", sa.Integer, primary_key=True),
    sa.Column("booking_id", sa.UUID, sa.ForeignKey(tables.bookings.c.id), nullable=False, unique=True),
    info=OWNER,
)
