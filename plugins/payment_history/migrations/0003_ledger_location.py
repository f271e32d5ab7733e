"""the ledger keeps the location of each entry's booking

Revision ID: payment_history_0003
Revises: payment_history_0002
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = 'payment_history_0003'
down_revision: Union[str, Sequence[str], None] = 'payment_history_0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column('payment_ledger', sa.Column('location_id', sa.UUID(), nullable=True))
    op.drop_index('ix_payment_ledger_occurred', table_name='payment_ledger')
    op.create_index('ix_payment_ledger_occurred', 'payment_ledger', ['occurred_at', 'id'], unique=False,
                    postgresql_include=['kind', 'currency', 'amount_cents', 'location_id'])


def downgrade() -> None:
    op.drop_index('ix_payment_ledger_occurred', table_name='payment_ledger')
    op.create_index('ix_payment_ledger_occurred', 'payment_ledger', ['occurred_at', 'id'], unique=False,
                    postgresql_include=['kind', 'currency', 'amount_cents'])
    op.drop_column('payment_ledger', 'location_id')
