"""Request and response models of the disputes API; money is integer cents with a currency."""
from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

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
    reminded_at: datetime | None = Field(None, description="When staff were reminded of the deadline.")
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


class DisputeDueSoon(BaseModel):
    """A dispute's evidence deadline is near and it has no answer yet (told once)."""

    dispute_id: str
    provider_dispute_id: str
    amount_cents: int
    currency: str
    due_by: str


class ReconcileRequest(BaseModel):
    """Local days of the business (``time_zone``, else its default), both included."""

    model_config = ConfigDict(extra="forbid")

    first_day: date
    last_day: date
    time_zone: str | None = Field(None, max_length=64)

    @model_validator(mode="after")
    def _order(self):
        if self.last_day < self.first_day:
            raise ValueError("last_day must not be before first_day")
        if (self.last_day - self.first_day).days > 92:
            raise ValueError("last_day: a reconciliation spans at most 92 days")
        return self


class Mismatch(BaseModel):
    kind: Literal["missing_locally", "missing_at_provider", "amount_differs", "booking_mismatch"] = Field(
        description="missing_locally: the provider moved money the ledger lacks; missing_at_provider: the "
                    "reverse; amount_differs: both, different sums; booking_mismatch: the provider's booking is "
                    "not ours or not the ledger's.")
    entry: Literal["charge", "refund", "fee"] = Field(
        description="The ledger entry compared; fee: the provider's fee on the payment.")
    currency: str
    payment_id: str | None = Field(description="Our payment (the deposit); null when the provider names none.")
    booking_id: str | None
    intent_id: str | None
    provider_cents: int
    ledger_cents: int
    provider_ids: list[str] = Field(description="The provider's balance transactions.")
    ledger_ids: list[str] = Field(description="The ledger's entries.")


class Reconciliation(BaseModel):
    id: uuid.UUID
    status: Literal["queued", "running", "done"]
    first_day: date
    last_day: date
    time_zone: str
    range_start: datetime
    range_end: datetime
    fetched: int = Field(description="Provider transactions fetched so far.")
    matched: int = Field(description="Payment entries on which the provider and the ledger agree.")
    mismatches: list[Mismatch] | None = Field(description="Every disagreement; null until done.")
    error: str | None = Field(description="The provider's last failure while the run waits to resume.")
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, row) -> "Reconciliation":
        return cls(**{k: v for k, v in row.items() if k != "report"}, mismatches=row["report"])


class PaymentReconciled(BaseModel):
    """A reconciliation of the provider's transactions with the ledger finished."""

    reconciliation_id: str
    first_day: str
    last_day: str
    matched: int
    mismatches: int


class BulkItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deposit_id: uuid.UUID
    idempotency_key: str = Field(min_length=1, max_length=200,
                                 description="This item's own key: an item with a key already used moves no money again.")
    amount_cents: int | None = Field(None, ge=1, description="Refunds: this much (all that is left when absent).")
    payment_method: str | None = Field(None, min_length=1, max_length=255, description="Captures: the method to pay with.")
    reason: str | None = Field(None, max_length=500)


class BulkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["refund", "capture"]
    items: list[BulkItem] = Field(min_length=1, max_length=500, description="Worked in this order; keys unique.")


class BulkItemResult(BaseModel):
    seq: int
    deposit_id: uuid.UUID
    idempotency_key: str
    status: Literal["pending", "succeeded", "failed"]
    attempts: int
    result: dict[str, str | int | None] | None = Field(
        description="What moved: the refund (refund_id, amount_cents) or the deposit's status.")
    error: dict[str, str | int | None] | None = Field(description="Why it failed: status, title, detail.")
    finished_at: datetime | None


class BulkJob(BaseModel):
    id: uuid.UUID
    action: Literal["refund", "capture"]
    status: Literal["queued", "running", "done"]
    total: int
    succeeded: int
    failed: int
    results: list[BulkItemResult]
    created_at: datetime
    finished_at: datetime | None


class BulkCompleted(BaseModel):
    """Every item of a bulk refund or capture was worked; ``failed`` of them did not go through."""

    job_id: str
    action: str
    succeeded: int
    failed: int
