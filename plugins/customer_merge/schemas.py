"""The merge API's bodies and its event."""
from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field

from myhibachi.core import NextCursor


class Candidate(BaseModel):
    customer_ids: list[str]
    score: float
    reason: str
    names: list[str | None]


class DuplicatePage(BaseModel):
    items: list[Candidate]
    next_cursor: NextCursor


class FieldChoice(BaseModel):
    value: str | None
    source: str  # "target" or "source"
    why: str


class MergePreview(BaseModel):
    source_id: str
    target_id: str
    fields: dict[str, FieldChoice]
    bookings_to_move: int


class MergeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source_id: uuid.UUID
    target_id: uuid.UUID


class MergeResult(MergePreview):
    merged: bool = True


class CustomerMerged(BaseModel):
    """A duplicate customer (``source_id``) was merged into ``target_id``; the source is a tombstone."""

    source_id: str
    target_id: str
    bookings_moved: int


class MergedInto(BaseModel):
    """On the customer view (``customer.customer_merge``): where a merged-away customer went."""

    merged_into: uuid.UUID | None = Field(description="The customer this one was merged into (None: not merged).")
