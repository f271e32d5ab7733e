"""Embeddings (roadmap 3.2): texts embedded through the core's embeddings port, stored in
PostgreSQL with pgvector (HNSW, cosine) with the model and dimension of every row, and
searched by meaning."""
from __future__ import annotations

from pydantic import BaseModel, Field

from myhibachi.core import Plugin, hookimpl


class EmbeddingsSettings(BaseModel):
    """Read from ``MYHIBACHI_EMBEDDINGS_*``."""

    ef_search: int = Field(default=40, ge=1, le=1000, description="HNSW candidates per search (hnsw.ef_search).")
    cluster_texts: int = Field(default=5000, ge=10, le=100_000, description="Latest stored texts a clustering groups.")


class EmbeddingsPlugin(Plugin):
    name = "embeddings"
    version = "1.0.0"
    flag = "FEATURE_FLAG_AI_EMBEDDINGS"
    description = "Semantic search over stored texts: embeddings in pgvector, nearest by cosine."
    features = {"3.2": ["test_embeddings_create", "test_embeddings_search", "test_embeddings_similarity",
                     "test_embeddings_clustering"]}
    permissions = ("ai.read", "ai.write")
    settings = EmbeddingsSettings
    uses = ("voice_ai", "feedback")  # what callers said and customers' feedback join the conversations searched

    @hookimpl
    def register_events(self):
        from myhibachi.core import Event
        from myhibachi.plugins.embeddings.schemas import EmbeddingClustered, EmbeddingStored

        return [Event("embedding.stored", EmbeddingStored), Event("embedding.clustered", EmbeddingClustered)]

    @hookimpl
    def register_event_handlers(self, ctx):
        from myhibachi.plugins.embeddings import service

        handlers = {"webhook.twilio.inbound": [service.on_inbound_sms]}
        if ctx.plugins.get("voice_ai") is not None:
            handlers["voice.utterance.transcribed"] = [service.on_utterance]
        if ctx.plugins.get("feedback") is not None:
            handlers["feedback.submitted"] = [service.on_feedback]
        return handlers

    @hookimpl
    async def customer_erase(self, customer_id, conn, ctx):
        from myhibachi.plugins.embeddings.service import erase_customer

        await erase_customer(conn, customer_id)

    @hookimpl
    async def rotate_keys(self, batch, conn, ctx):
        from myhibachi.plugins.embeddings.service import rotate_keys

        return await rotate_keys(conn, ctx, batch=batch)


plugin = EmbeddingsPlugin()
