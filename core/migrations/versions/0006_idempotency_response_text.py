"""idempotency_keys.response as json, not jsonb: a replay answers the first response's keys
in their order

Revision ID: core_idempotency_json
Revises: core_event_fan_out
"""
from typing import Sequence, Union

from alembic import op

revision: str = "core_idempotency_json"
down_revision: Union[str, Sequence[str], None] = "core_event_fan_out"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.execute("ALTER TABLE idempotency_keys ALTER COLUMN response TYPE json USING response::json")


def downgrade() -> None:
    op.execute("ALTER TABLE idempotency_keys ALTER COLUMN response TYPE jsonb USING response::jsonb")
