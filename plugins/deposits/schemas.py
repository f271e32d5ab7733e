"""Request and response models of the deposits API; money is integer cents with a currency."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from myhibachi.core import NextCursor

Status = Literal["requires_payment", "processing", "succeeded", "partially_refunded", "refunded", "cancelled",
                 "failed"]


class DepositCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    booking_id: uuid.UUID
    amount_cents: int | None = Field(
        None, ge=1, le=100_000_000,
        description="The deposit in cents; unset: the settings' rule (a percentage of the booking's total, "
                    "with a minimum).")


class DepositConfirm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payment_method: str = Field(min_length=3, max_length=255, pattern=r"^[A-Za-z0-9_]+$",
                                description="The provider's payment method id (pm_card_visa in tests).")


class RefundCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount_cents: int | None = Field(None, ge=1, le=100_000_000,
                                     description="Cents to refund; unset: all that remains refundable.")
    reason: str | None = Field(None, max_length=500)


class Refund(BaseModel):
    id: uuid.UUID
    deposit_id: uuid.UUID
    amount_cents: int
    currency: str
    provider_refund_id: str
    status: str
    reason: str | None
    created_at: datetime


class Deposit(BaseModel):
    id: uuid.UUID
    booking_id: uuid.UUID
    customer_id: uuid.UUID
    amount_cents: int
    currency: str
    status: Status
    intent_id: str = Field(description="The provider's PaymentIntent id.")
    client_secret: str | None = Field(description="For the provider's client-side SDK.")
    payment_method: str | None
    captured_cents: int
    refunded_cents: int
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime
    succeeded_at: datetime | None


class DepositWithRefund(BaseModel):
    deposit: Deposit
    refund: Refund


class DepositPage(BaseModel):
    items: list[Deposit]
    next_cursor: NextCursor


class RefundPage(BaseModel):
    items: list[Refund]
    next_cursor: NextCursor


# --- the events deposits publishes ---------------------------------------------------------


class PaymentSucceeded(BaseModel):
    """A deposit was captured (the booking it holds is confirmed by deposits itself)."""

    payment_id: str = Field(description="The deposit's id.")
    booking_id: str
    customer_id: str
    amount_cents: int
    currency: str
    fee_cents: int = Field(0, description="The provider's fee on this charge (its balance transaction's).")


class PaymentRefunded(BaseModel):
    """Part or all of a captured deposit was refunded; `amount_cents` is this refund's share."""

    payment_id: str
    booking_id: str
    customer_id: str
    amount_cents: int
    currency: str


class PaymentFailed(BaseModel):
    """A deposit's payment was declined or failed at the provider."""

    payment_id: str
    booking_id: str
    customer_id: str
    reason: str
