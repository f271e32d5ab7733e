"""One row per embedded text: its vector with the model and dimension that made it, so a
search compares only vectors of one space."""
from __future__ import annotations

import sqlalchemy as sa
from pgvector.sqlalchemy import Vector

from myhibachi.core import created_at, metadata, uuid_pk

DIMENSIONS = 384

ai_embeddings = sa.Table(
    "ai_embeddings",
    metadata,
    uuid_pk(),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("source_id", sa.String(200)),
    sa.Column("label", sa.String(200)),
    sa.Column("text_enc", sa.Text, nullable=False),
    sa.Column("key_id", sa.String(40), nullable=False),
    sa.Column("model", sa.String(100), nullable=False),
    sa.Column("dimensions", sa.Integer, nullable=False),
    sa.Column("embedding", Vector(DIMENSIONS), nullable=False),
    created_at(),
    sa.CheckConstraint(f"dimensions = {DIMENSIONS}", name="dimensions"),
    sa.Index("ix_ai_embeddings_hnsw", "embedding", postgresql_using="hnsw",
             postgresql_ops={"embedding": "vector_cosine_ops"}),
    sa.Index("ix_ai_embeddings_source", "kind", "source_id"),
    info={"plugin": "embeddings"},
)

# Texts waiting for the worker: an event handler seals a conversation's text here, and the
# worker embeds them in batches (one call of the port each), never a request.
ai_embedding_queue = sa.Table(
    "ai_embedding_queue",
    metadata,
    uuid_pk(),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("source_id", sa.String(200), nullable=False, unique=True),
    sa.Column("text_enc", sa.Text, nullable=False),
    sa.Column("key_id", sa.String(40), nullable=False),
    created_at(),
    info={"plugin": "embeddings"},
)
