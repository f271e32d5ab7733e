"""disputes remember when staff were reminded of their evidence deadline

Revision ID: disputes_0004
Revises: disputes_0003
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = 'disputes_0004'
down_revision: Union[str, Sequence[str], None] = 'disputes_0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column('disputes', sa.Column('reminded_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_disputes_unreminded', 'disputes', ['due_by'], unique=False,
                    postgresql_where=sa.text('reminded_at IS NULL'))


def downgrade() -> None:
    op.drop_index('ix_disputes_unreminded', table_name='disputes', postgresql_where=sa.text('reminded_at IS NULL'))
    op.drop_column('disputes', 'reminded_at')
