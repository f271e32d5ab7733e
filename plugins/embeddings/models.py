"""One row per embedded text: its vector with the model and dimension that made it, so a
search compares only vectors of one space."""
from __future__ import annotations

import sqlalchemy as sa
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects.postgresql import ARRAY, UUID

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
    # whose words these are, so an erasure finds them: the customer, or the lookup hash of the
    # number they wrote or called from (a caller who is not a customer yet has only that)
    sa.Column("customer_id", UUID(as_uuid=True)),
    sa.Column("phone_hash", sa.LargeBinary(32)),
    created_at(),
    sa.CheckConstraint(f"dimensions = {DIMENSIONS}", name="dimensions"),
    sa.Index("ix_ai_embeddings_hnsw", "embedding", postgresql_using="hnsw",
             postgresql_ops={"embedding": "vector_cosine_ops"}),
    sa.Index("ix_ai_embeddings_source", "kind", "source_id"),
    sa.Index("ix_ai_embeddings_model", "model"),  # the worker finds rows of an older model without a scan
    sa.Index("ix_ai_embeddings_customer", "customer_id", postgresql_where=sa.text("customer_id IS NOT NULL")),
    sa.Index("ix_ai_embeddings_phone_hash", "phone_hash", postgresql_where=sa.text("phone_hash IS NOT NULL")),
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
    sa.Column("customer_id", UUID(as_uuid=True)),
    sa.Column("phone_hash", sa.LargeBinary(32)),
    created_at(),
    info={"plugin": "embeddings"},
)

# A clustering run over the stored conversations of one model, and its clusters, each
# labelled by the terms that set it apart from the others.
ai_clusterings = sa.Table(
    "ai_clusterings",
    metadata,
    uuid_pk(),
    sa.Column("model", sa.String(100), nullable=False),
    sa.Column("kinds", ARRAY(sa.String(40)), nullable=False),
    sa.Column("clusters", sa.Integer, nullable=False),
    sa.Column("texts", sa.Integer, nullable=False),
    sa.Column("silhouette", sa.Float),
    created_at(),
    info={"plugin": "embeddings"},
)

ai_clusters = sa.Table(
    "ai_clusters",
    metadata,
    uuid_pk(),
    sa.Column("clustering_id", UUID(as_uuid=True), sa.ForeignKey("ai_clusterings.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("terms", ARRAY(sa.String(100)), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("embedding_ids", ARRAY(UUID(as_uuid=True)), nullable=False),
    sa.UniqueConstraint("clustering_id", "position"),
    info={"plugin": "embeddings"},
)
