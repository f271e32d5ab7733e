"""clusterings of conversations

Revision ID: embeddings_0003
Revises: embeddings_0002
Create Date: 2026-12-04 18:03:24.196304
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'embeddings_0003'
down_revision: Union[str, Sequence[str], None] = 'embeddings_0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('ai_clusterings',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('model', sa.String(length=100), nullable=False),
    sa.Column('kinds', postgresql.ARRAY(sa.String(length=40)), nullable=False),
    sa.Column('clusters', sa.Integer(), nullable=False),
    sa.Column('texts', sa.Integer(), nullable=False),
    sa.Column('silhouette', sa.Float(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ai_clusterings')),
    info={'plugin': 'embeddings'}
    )
    op.create_table('ai_clusters',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('clustering_id', sa.UUID(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('terms', postgresql.ARRAY(sa.String(length=100)), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('embedding_ids', postgresql.ARRAY(sa.UUID()), nullable=False),
    sa.ForeignKeyConstraint(['clustering_id'], ['ai_clusterings.id'], name=op.f('fk_ai_clusters_clustering_id_ai_clusterings'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ai_clusters')),
    sa.UniqueConstraint('clustering_id', 'position', name=op.f('uq_ai_clusters_clustering_id')),
    info={'plugin': 'embeddings'}
    )


def downgrade() -> None:
    op.drop_table('ai_clusters')
    op.drop_table('ai_clusterings')
