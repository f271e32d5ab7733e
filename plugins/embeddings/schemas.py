from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from myhibachi.core import NextCursor


class EmbeddingStored(BaseModel):
    """A text was embedded and stored, with the model and dimension of its vector."""

    embedding_id: str
    kind: str
    source_id: str | None = None
    model: str
    dimensions: int


class EmbeddingClustered(BaseModel):
    """The stored conversations of ``kinds`` were grouped into ``clusters`` clusters."""

    clustering_id: str
    model: str
    kinds: list[str]
    clusters: int
    texts: int


class TextIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=8000, description="The text to embed (longer than the model's "
                      "window: truncated by the model).")
    kind: str = Field(default="document", min_length=1, max_length=40, pattern=r"^[a-z_]+$",
                      description="What the text is (faq, document, sms, call, feedback): search may filter by it.")
    source_id: str | None = Field(default=None, max_length=200, description="The id of what the text came from.")
    label: str | None = Field(default=None, max_length=200, description="A short name shown in results.")


class EmbedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[TextIn] = Field(min_length=1, max_length=64)


class Embedded(BaseModel):
    id: uuid.UUID
    kind: str
    source_id: str | None
    label: str | None
    model: str
    dimensions: int
    embedding: list[float]


class EmbedResponse(BaseModel):
    model: str
    dimensions: int
    results: list[Embedded] = Field(description="The stored texts, in the order they were sent.")


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=2000)
    kind: str | None = Field(default=None, max_length=40, description="Only texts of this kind.")


class Hit(BaseModel):
    id: uuid.UUID
    kind: str
    source_id: str | None
    label: str | None
    text: str
    score: float = Field(description="Cosine similarity, 1 is the same direction.")


class SimilarResponse(BaseModel):
    conversation_id: str
    items: list[Hit]
    next_cursor: NextCursor


class SearchResponse(BaseModel):
    model: str
    items: list[Hit]
    next_cursor: NextCursor


class ClusterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kinds: list[Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z_]+$")]] = Field(
        default=["sms", "call", "feedback"], min_length=1, max_length=10,
        description="The kinds of stored texts to group (conversations by default).")
    clusters: int | None = Field(default=None, ge=2, le=50,
                                 description="How many clusters; by default the count (2-12) with the best silhouette.")


class Cluster(BaseModel):
    position: int = Field(description="0 is the largest cluster.")
    label: str = Field(description="Its top terms, joined.")
    terms: list[str]
    size: int
    embedding_ids: list[uuid.UUID]
    source_ids: list[str | None] = Field(description="The conversations in it.")


class Clustering(BaseModel):
    id: uuid.UUID
    model: str
    kinds: list[str]
    clusters: int
    texts: int
    silhouette: float | None = Field(description="Cosine silhouette of the partition, -1 to 1 (higher: apart).")
    created_at: datetime
    results: list[Cluster]
