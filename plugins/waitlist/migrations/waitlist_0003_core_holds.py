"""waitlist offers hold their places in the core's booking_holds (the core counts them)

Revision ID: waitlist_0003
Revises: waitlist_0002
Create Date: 2026-12-04
"""
from typing import Sequence, Union

from alembic import op

revision: str = "waitlist_0003"
down_revision: Union[str, Sequence[str], None] = "waitlist_0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = "core_booking_holds"


def upgrade() -> None:
    op.execute("INSERT INTO booking_holds (id, owner, customer_id, pools, starts_at, ends_at, expires_at) "
               "SELECT id, 'waitlist', customer_id, pools, starts_at, ends_at, expires_at FROM waitlist_offers "
               "WHERE status = 'offered'")
    op.execute("DROP FUNCTION waitlist_holds(bigint[], timestamptz, timestamptz, timestamptz, uuid)")


def downgrade() -> None:
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("waitlist_0002", Path(__file__).with_name("waitlist_0002_holds_function.py"))
    previous = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(previous)
    previous.upgrade()
    op.execute("DELETE FROM booking_holds WHERE owner = 'waitlist'")
