"""embeddings: an index on the model, so the worker finds the rows a model switch left behind

Revision ID: embeddings_0004
Revises: embeddings_0003
"""
from typing import Sequence, Union

from alembic import op

revision: str = 'embeddings_0004'
down_revision: Union[str, Sequence[str], None] = 'embeddings_0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index('ix_ai_embeddings_model', 'ai_embeddings', ['model'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_ai_embeddings_model', table_name='ai_embeddings')
