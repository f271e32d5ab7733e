"""booking_busy and booking_busy_locked plan their query once per connection

PostgreSQL's plan cache keeps re-planning a statement whose custom plans look cheaper than
its generic one, and booking_busy's ``(pool IS NULL OR ...)`` arms always do: every create and
availability read planned the inlined union again, 0.25-0.3 ms of the database's CPU, more
than running it. Its generic plan (a bitmap scan of each table's ``starts_at`` index) is the
one a custom plan picks anyway, so both functions are told to keep it.

Revision ID: core_busy_generic_plan
Revises: core_booking_pii
"""
from typing import Sequence, Union

from alembic import op

revision: str = "core_busy_generic_plan"
down_revision: Union[str, Sequence[str], None] = "core_booking_pii"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

FUNCTIONS = (
    "booking_busy(text[], timestamptz, timestamptz, timestamptz, uuid, text, uuid)",
    "booking_busy_locked(text[], text[], timestamptz, timestamptz, timestamptz, uuid, text[], uuid)",
)


def upgrade() -> None:
    for function in FUNCTIONS:
        op.execute(f"ALTER FUNCTION {function} SET plan_cache_mode = force_generic_plan")


def downgrade() -> None:
    for function in FUNCTIONS:
        op.execute(f"ALTER FUNCTION {function} RESET plan_cache_mode")
