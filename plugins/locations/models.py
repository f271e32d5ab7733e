"""The locations plugin's table (a booking's location is the pool it draws on, in ``bookings.pools``)."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from myhibachi.core import created_at, metadata, timestamp, uuid_pk

OWNER = {"plugin": "locations"}
STATUSES = ("active", "inactive", "maintenance")

locations = sa.Table(
    "locations",
    metadata,
    uuid_pk(),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("address", sa.Text, nullable=False),
    sa.Column("city", sa.String(100), nullable=False),
    sa.Column("state", sa.String(50), nullable=False),
    sa.Column("zip_code", sa.String(10), nullable=False),
    sa.Column("phone", sa.String(20)),
    sa.Column("email", sa.String(255)),
    sa.Column("time_zone", sa.String(64), nullable=False),
    # the most guests one event of this location serves
    sa.Column("capacity", sa.Integer, nullable=False),
    # how many events this location runs at the same time (its chef teams)
    sa.Column("events_per_slot", sa.Integer, nullable=False, server_default="1"),
    sa.Column("status", sa.String(20), nullable=False, server_default="active"),
    # {"service_area": {"zip_codes": [...]} | {"lat", "lon", "radius_km"}, "hours": {"mon": ["11:00", "22:00"]}, ...}
    sa.Column("metadata", JSONB, nullable=False, server_default="{}"),
    created_at(),
    timestamp("updated_at", nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint("capacity >= 1", name="capacity"),
    sa.CheckConstraint("events_per_slot >= 1", name="events_per_slot"),
    sa.CheckConstraint(f"status IN {STATUSES}", name="status"),
    sa.Index("ix_locations_created_id", "created_at", "id"),
    info=OWNER,
)
