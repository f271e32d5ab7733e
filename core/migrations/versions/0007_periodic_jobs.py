"""periodic_jobs: one row per periodic job, its next run claimed by one worker at a time

Revision ID: core_periodic_jobs
Revises: core_idempotency_json
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "core_periodic_jobs"
down_revision: Union[str, Sequence[str], None] = "core_idempotency_json"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "periodic_jobs",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_run_at", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.Text()),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_periodic_jobs")),
    )


def downgrade() -> None:
    op.drop_table("periodic_jobs")
