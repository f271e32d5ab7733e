"""booking_holds: places held that are not bookings (a waitlist offer's), counted by booking_busy

Revision ID: core_booking_holds
Revises: core_booking_busy
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision: str = "core_booking_holds"
down_revision: Union[str, Sequence[str], None] = "core_booking_busy"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

LOCK = """
CREATE FUNCTION booking_lock_slots(keys text[]) RETURNS void LANGUAGE sql VOLATILE AS $$
    INSERT INTO booking_slots (slot_key) SELECT unnest(keys)
        ON CONFLICT (slot_key) DO UPDATE SET slot_key = excluded.slot_key
$$"""

# Bookings and holds overlapping [lo, hi) of one pool (every pool when it is NULL), as two
# sorted arrays; a hold for ``customer`` is that customer's to book and does not count.
BUSY = """
CREATE FUNCTION booking_busy(statuses text[], since timestamptz, lo timestamptz, hi timestamptz,
                             exclude uuid, pool text, customer uuid)
RETURNS TABLE (starts timestamptz[], ends timestamptz[])
LANGUAGE sql STABLE AS $$
    SELECT array_agg(x.s ORDER BY x.s), array_agg(x.e ORDER BY x.e) FROM (
        SELECT b.starts_at AS s, b.starts_at + b.duration_minutes * interval '1 minute' AS e FROM bookings AS b
        WHERE b.status = ANY(statuses) AND b.starts_at < hi AND b.starts_at > since
          AND b.starts_at + b.duration_minutes * interval '1 minute' > lo
          AND (exclude IS NULL OR b.id <> exclude) AND (pool IS NULL OR pool = ANY(b.pools))
        UNION ALL
        SELECT h.starts_at, h.ends_at FROM booking_holds AS h
        WHERE h.starts_at < hi AND h.starts_at > since AND h.ends_at > lo AND h.expires_at > now()
          AND h.customer_id IS DISTINCT FROM customer AND (pool IS NULL OR pool = ANY(h.pools))
    ) AS x
$$"""

# The slots' rows upserted (the update takes each row's lock, waiting for a transaction that
# holds it, in the keys' order), then the busy read of each pool. VOLATILE plpgsql: the read
# takes a snapshot of its own after the locks (READ COMMITTED), so it counts a booking or a
# hold committed while they were awaited; one statement would read from a snapshot taken before.
LOCKED = """
CREATE FUNCTION booking_busy_locked(keys text[], statuses text[], since timestamptz, lo timestamptz,
                                    hi timestamptz, exclude uuid, pools text[], customer uuid)
RETURNS TABLE (pool text, starts timestamptz[], ends timestamptz[])
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM booking_lock_slots(keys);
    RETURN QUERY SELECT p.pool, b.starts, b.ends FROM unnest(pools) AS p(pool),
        LATERAL booking_busy(statuses, since, lo, hi, exclude, p.pool, customer) AS b;
END $$"""


def upgrade() -> None:
    op.create_table(
        "booking_holds",
        sa.Column("id", sa.UUID(), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.UUID(), nullable=True),
        sa.Column("pools", ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_booking_holds_starts_at", "booking_holds", ["starts_at"])
    op.execute("DROP FUNCTION booking_busy_locked(text[], text[], timestamptz, timestamptz, timestamptz, uuid, text[])")
    op.execute("DROP FUNCTION booking_busy(text[], timestamptz, timestamptz, timestamptz, uuid, text)")
    op.execute(LOCK)
    op.execute(BUSY)
    op.execute(LOCKED)


def downgrade() -> None:
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("core_booking_busy", Path(__file__).with_name("0010_booking_busy.py"))
    previous = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(previous)
    op.execute("DROP FUNCTION booking_busy_locked(text[], text[], timestamptz, timestamptz, timestamptz, uuid, text[], "
               "uuid)")
    op.execute("DROP FUNCTION booking_busy(text[], timestamptz, timestamptz, timestamptz, uuid, text, uuid)")
    op.execute("DROP FUNCTION booking_lock_slots(text[])")
    op.drop_table("booking_holds")
    previous.upgrade()
