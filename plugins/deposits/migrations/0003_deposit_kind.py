"""A payment of a booking is its deposit or the balance paid after it

Revision ID: deposits_0003
Revises: deposits_0002
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "deposits_0003"
down_revision: Union[str, Sequence[str], None] = "deposits_0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("deposits", sa.Column("kind", sa.String(8), nullable=False, server_default="deposit"))
    op.create_check_constraint("kind", "deposits", "kind IN ('deposit', 'balance')")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_deposits_kind"), "deposits", type_="check")
    op.drop_column("deposits", "kind")
