from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field

from myhibachi.core import NextCursor


class EmbeddingStored(BaseModel):
    """A text was embedded and stored, with the model and dimension of its vector."""

    embedding_id: str
    kind: str
    source_id: str | None = None
    model: str
    dimensions: int


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
