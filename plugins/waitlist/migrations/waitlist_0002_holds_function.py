"""waitlist_holds: a create's wait for the day's offers and its read of the holds, in one call

Revision ID: waitlist_0002
Revises: waitlist_0001
Create Date: 2026-12-04
"""
from typing import Sequence, Union

from alembic import op

revision: str = "waitlist_0002"
down_revision: Union[str, Sequence[str], None] = "waitlist_0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


# VOLATILE plpgsql: the query after the lock takes a snapshot of its own (READ COMMITTED), so
# it sees an offer committed while the lock was awaited; one statement with the lock in a
# subquery would read from a snapshot taken before the wait and miss it.
def upgrade() -> None:
    op.execute("""
CREATE FUNCTION waitlist_holds(keys bigint[], at timestamptz, lo timestamptz, hi timestamptz, customer uuid)
RETURNS TABLE (pools text[], starts_at timestamptz, ends_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(k) FROM unnest(keys) AS k;
    RETURN QUERY SELECT o.pools, o.starts_at, o.ends_at FROM waitlist_offers AS o
        WHERE o.status = 'offered' AND o.expires_at > at AND o.starts_at < hi AND o.ends_at > lo
          AND o.customer_id IS DISTINCT FROM customer;
END $$""")


def downgrade() -> None:
    op.execute("DROP FUNCTION waitlist_holds(bigint[], timestamptz, timestamptz, timestamptz, uuid)")
