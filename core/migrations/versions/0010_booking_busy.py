"""booking_busy and booking_busy_locked: the bookings a capacity check counts, and a create's
slot locks with that read in one round trip

Revision ID: core_booking_busy
Revises: core_booking_pools
"""
from typing import Sequence, Union

from alembic import op

revision: str = "core_booking_busy"
down_revision: Union[str, Sequence[str], None] = "core_booking_pools"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


# The active bookings overlapping [lo, hi) of one pool (every pool when it is NULL) as two
# sorted arrays. A one-SELECT SQL function: the planner inlines it into the calling query.
BUSY = """
CREATE FUNCTION booking_busy(statuses text[], since timestamptz, lo timestamptz, hi timestamptz,
                             exclude uuid, pool text)
RETURNS TABLE (starts timestamptz[], ends timestamptz[])
LANGUAGE sql STABLE AS $$
    SELECT array_agg(b.starts_at ORDER BY b.starts_at), array_agg(e.ends_at ORDER BY e.ends_at)
    FROM bookings AS b, LATERAL (SELECT b.starts_at + b.duration_minutes * interval '1 minute' AS ends_at) AS e
    WHERE b.status = ANY(statuses) AND b.starts_at < hi AND b.starts_at > since AND e.ends_at > lo
      AND (exclude IS NULL OR b.id <> exclude) AND (pool IS NULL OR pool = ANY(b.pools))
$$"""

# The slots' rows upserted (the update takes each row's lock, waiting for a transaction that
# holds it, in the keys' order), then the busy read of each pool. VOLATILE plpgsql: the read
# takes a snapshot of its own after the locks (READ COMMITTED), so it counts a booking
# committed while they were awaited; one statement would read from a snapshot taken before.
LOCKED = """
CREATE FUNCTION booking_busy_locked(keys text[], statuses text[], since timestamptz, lo timestamptz,
                                    hi timestamptz, exclude uuid, pools text[])
RETURNS TABLE (pool text, starts timestamptz[], ends timestamptz[])
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    INSERT INTO booking_slots (slot_key) SELECT unnest(keys)
        ON CONFLICT (slot_key) DO UPDATE SET slot_key = excluded.slot_key;
    RETURN QUERY SELECT p.pool, b.starts, b.ends FROM unnest(pools) AS p(pool),
        LATERAL booking_busy(statuses, since, lo, hi, exclude, p.pool) AS b;
END $$"""


def upgrade() -> None:
    op.execute(BUSY)
    op.execute(LOCKED)


def downgrade() -> None:
    op.execute("DROP FUNCTION booking_busy_locked(text[], text[], timestamptz, timestamptz, timestamptz, uuid, text[])")
    op.execute("DROP FUNCTION booking_busy(text[], timestamptz, timestamptz, timestamptz, uuid, text)")
