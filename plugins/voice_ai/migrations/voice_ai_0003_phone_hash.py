"""the lookup hash of the customer's number on each call, so an erasure finds their calls

Revision ID: voice_ai_0003
Revises: voice_ai_0002
Create Date: 2026-12-06 01:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "voice_ai_0003"
down_revision: Union[str, Sequence[str], None] = "voice_ai_0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # calls stored before this stay without a hash: computing it needs the vault's key
    op.add_column("voice_calls", sa.Column("phone_hash", sa.LargeBinary(32), nullable=True))
    op.create_index("ix_voice_calls_phone_hash", "voice_calls", ["phone_hash"],
                    postgresql_where=sa.text("phone_hash IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_voice_calls_phone_hash", table_name="voice_calls")
    op.drop_column("voice_calls", "phone_hash")
