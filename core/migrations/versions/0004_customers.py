"""customers: list order index, refresh token families

Revision ID: core_customers
Revises: core_ports
"""
from typing import Sequence, Union

from alembic import op

revision: str = "core_customers"
down_revision: Union[str, Sequence[str], None] = "core_ports"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index("ix_customers_created_id", "customers", ["created_at", "id"])
    op.create_index("ix_refresh_tokens_family", "refresh_tokens", ["family"])


def downgrade() -> None:
    op.drop_index("ix_refresh_tokens_family", table_name="refresh_tokens")
    op.drop_index("ix_customers_created_id", table_name="customers")
