"""Request and response models of the disputes API; money is integer cents with a currency."""
from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from myhibachi.core import NextCursor


class Dispute(BaseModel):
    id: uuid.UUID
    provider_dispute_id: str
    charge_id: str | None
    intent_id: str | None
    amount_cents: int
    currency: str
    reason: str | None
    status: str
    due_by: datetime | None = Field(description="Evidence must reach the provider by then.")
    evidence: dict[str, str] | None
    responded_at: datetime | None
    created_at: datetime


class DisputePage(BaseModel):
    items: list[Dispute]
    next_cursor: NextCursor


class Evidence(BaseModel):
    """What staff send; each maps to one of Stripe's evidence fields."""

    model_config = ConfigDict(extra="forbid")

    booking_id: uuid.UUID | None = Field(None, description="The booking's date, guests and address are described.")
    signed_terms: str | None = Field(None, max_length=20000, description="The terms the customer accepted.")
    messages: str | None = Field(None, max_length=20000, description="Messages exchanged with the customer.")
    file_ids: list[str] = Field(default_factory=list, max_length=5,
                                description="The provider's file ids (receipts, photos) uploaded beforehand.")

    @model_validator(mode="after")
    def _some(self):
        if not (self.booking_id or self.signed_terms or self.messages or self.file_ids):
            raise ValueError("evidence: name at least one of booking_id, signed_terms, messages, file_ids")
        return self


class DisputeOpened(BaseModel):
    """A customer disputed a charge at the provider; evidence is due by ``due_by``."""

    dispute_id: str
    provider_dispute_id: str
    amount_cents: int
    currency: str
    due_by: str | None
