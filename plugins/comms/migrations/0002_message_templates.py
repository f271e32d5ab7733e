"""the template and version a message was rendered from

Revision ID: comms_0002
Revises: comms_0001
Create Date: 2026-12-03 16:53:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = 'comms_0002'
down_revision: Union[str, Sequence[str], None] = 'comms_0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column('comms_messages', sa.Column('template_id', sa.UUID(), nullable=True))
    op.add_column('comms_messages', sa.Column('template_version', sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column('comms_messages', 'template_version')
    op.drop_column('comms_messages', 'template_id')
