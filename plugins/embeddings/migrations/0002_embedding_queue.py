"""embeddings: the queue of conversation texts the worker embeds in batches

Revision ID: embeddings_0002
Revises: embeddings_0001
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = 'embeddings_0002'
down_revision: Union[str, Sequence[str], None] = 'embeddings_0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('ai_embedding_queue',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('source_id', sa.String(length=200), nullable=False),
    sa.Column('text_enc', sa.Text(), nullable=False),
    sa.Column('key_id', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ai_embedding_queue')),
    sa.UniqueConstraint('source_id', name=op.f('uq_ai_embedding_queue_source_id')),
    info={'plugin': 'embeddings'}
    )


def downgrade() -> None:
    op.drop_table('ai_embedding_queue')
