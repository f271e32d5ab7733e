"""embeddings: vectors with their model, HNSW cosine index

Revision ID: embeddings_0001
Revises: (first of its branch; depends on the core's tables, which create the vector extension)
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector

revision: str = 'embeddings_0001'
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = ('embeddings',)
depends_on: Union[str, Sequence[str], None] = 'core_booking_pools'


def upgrade() -> None:
    op.create_table('ai_embeddings',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('source_id', sa.String(length=200), nullable=True),
    sa.Column('label', sa.String(length=200), nullable=True),
    sa.Column('text_enc', sa.Text(), nullable=False),
    sa.Column('key_id', sa.String(length=40), nullable=False),
    sa.Column('model', sa.String(length=100), nullable=False),
    sa.Column('dimensions', sa.Integer(), nullable=False),
    sa.Column('embedding', Vector(384), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('dimensions = 384', name=op.f('ck_ai_embeddings_dimensions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ai_embeddings')),
    info={'plugin': 'embeddings'}
    )
    op.create_index('ix_ai_embeddings_hnsw', 'ai_embeddings', ['embedding'], unique=False, postgresql_using='hnsw',
                    postgresql_ops={'embedding': 'vector_cosine_ops'})
    op.create_index('ix_ai_embeddings_source', 'ai_embeddings', ['kind', 'source_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_ai_embeddings_source', table_name='ai_embeddings')
    op.drop_index('ix_ai_embeddings_hnsw', table_name='ai_embeddings', postgresql_using='hnsw',
                  postgresql_ops={'embedding': 'vector_cosine_ops'})
    op.drop_table('ai_embeddings')
