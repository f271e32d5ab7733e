"""embeddings: whose words each text is (customer id, or the number's lookup hash), so an erasure finds them

Revision ID: embeddings_0005
Revises: embeddings_0004
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision: str = 'embeddings_0005'
down_revision: Union[str, Sequence[str], None] = 'embeddings_0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # texts stored before this stay without an owner: the hash needs the vault's key
    for table in ("ai_embeddings", "ai_embedding_queue"):
        op.add_column(table, sa.Column("customer_id", UUID(as_uuid=True), nullable=True))
        op.add_column(table, sa.Column("phone_hash", sa.LargeBinary(32), nullable=True))
    op.create_index("ix_ai_embeddings_customer", "ai_embeddings", ["customer_id"],
                    postgresql_where=sa.text("customer_id IS NOT NULL"))
    op.create_index("ix_ai_embeddings_phone_hash", "ai_embeddings", ["phone_hash"],
                    postgresql_where=sa.text("phone_hash IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_ai_embeddings_phone_hash", table_name="ai_embeddings")
    op.drop_index("ix_ai_embeddings_customer", table_name="ai_embeddings")
    for table in ("ai_embeddings", "ai_embedding_queue"):
        op.drop_column(table, "phone_hash")
        op.drop_column(table, "customer_id")
