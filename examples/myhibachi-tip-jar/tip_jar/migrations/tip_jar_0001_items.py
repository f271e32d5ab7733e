"""tip_jar items

Revision ID: tip_jar_0001
Revises:
Create Date: scaffold
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "tip_jar_0001"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = ("tip_jar",)
depends_on: Union[str, Sequence[str], None] = "core_0001"


def upgrade() -> None:
    op.create_table(
        "tip_jar_items",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tip_jar_items")),
    )


def downgrade() -> None:
    op.drop_table("tip_jar_items")
