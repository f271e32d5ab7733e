"""the provider's id of each IVR input, so a replayed input moves the menu once

Revision ID: voice_ai_0002
Revises: voice_ai_0001
Create Date: 2026-12-04 21:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "voice_ai_0002"
down_revision: Union[str, Sequence[str], None] = "voice_ai_0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("voice_ivr_steps", sa.Column("input_id", sa.String(64), nullable=True))
    op.create_index("uq_voice_ivr_steps_input", "voice_ivr_steps", ["call_id", "input_id"], unique=True,
                    postgresql_where=sa.text("input_id IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("uq_voice_ivr_steps_input", table_name="voice_ivr_steps")
    op.drop_column("voice_ivr_steps", "input_id")
