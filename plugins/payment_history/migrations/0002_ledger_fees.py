"""the ledger keeps the provider's fees as their own rows

Revision ID: payment_history_0002
Revises: payment_history_0001
"""
from typing import Sequence, Union

from alembic import op

revision: str = 'payment_history_0002'
down_revision: Union[str, Sequence[str], None] = 'payment_history_0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.drop_constraint(op.f('ck_payment_ledger_kind'), 'payment_ledger', type_='check')
    op.create_check_constraint(op.f('ck_payment_ledger_kind'), 'payment_ledger', "kind IN ('charge', 'refund', 'fee')")


def downgrade() -> None:
    op.execute("DELETE FROM payment_ledger WHERE kind = 'fee'")
    op.drop_constraint(op.f('ck_payment_ledger_kind'), 'payment_ledger', type_='check')
    op.create_check_constraint(op.f('ck_payment_ledger_kind'), 'payment_ledger', "kind IN ('charge', 'refund')")
