"""A deposit may be one payer's share of a booking whose bill is split

Revision ID: deposits_0004
Revises: deposits_0003
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "deposits_0004"
down_revision: Union[str, Sequence[str], None] = "deposits_0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("deposits", sa.Column("share", sa.String(200)))
    op.add_column("deposits", sa.Column("shares", sa.SmallInteger))
    op.create_check_constraint("share_of_shares", "deposits", "(share IS NULL) = (shares IS NULL) AND "
                                                              "(shares IS NULL OR shares >= 1)")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_deposits_share_of_shares"), "deposits", type_="check")
    op.drop_column("deposits", "shares")
    op.drop_column("deposits", "share")
