"""Request and response models of the deposits API; money is integer cents with a currency."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from myhibachi.core import NextCursor

Status = Literal["requires_payment", "processing", "succeeded", "partially_refunded", "refunded", "cancelled",
                 "failed"]
Kind = Literal["deposit", "balance"]


class DepositCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    booking_id: uuid.UUID
    amount_cents: int | None = Field(
        None, ge=1, le=100_000_000,
        description="The deposit in cents; unset: the settings' rule (a percentage of the booking's total, "
                    "with a minimum).")


class BalanceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"booking_id": "0b7c7a52-3f7e-4b8e-9a51-0d2f3c1e7a10", "payment_method": "pm_card_visa"}]})

    booking_id: uuid.UUID
    payment_method: str = Field(min_length=3, max_length=255, pattern=r"^[A-Za-z0-9_]+$",
                                description="The provider's payment method id (pm_card_visa in tests).")
    amount_cents: int | None = Field(
        None, ge=1, le=100_000_000, description="Cents to pay now, at most what is due; unset: all that is due.")


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
    kind: Kind = Field("deposit", description="`deposit` held the booking; `balance` paid the rest after it.")
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


class BookingPayments(BaseModel):
    """The booking view's ``deposits`` field: what the booking's payments stand at."""

    deposit_status: Status | Literal["none", "partially_paid"] = Field(
        description="The status of the booking's latest deposit; `none` when it has none. A split bill's: "
                    "`succeeded` once every payer's share deposit is captured, `partially_paid` while some are.")
    deposit_cents: int = Field(description="The latest deposit's amount (0 without one); a split bill's: the "
                                           "sum of each share's latest.")
    paid_cents: int = Field(description="Captured by the deposit and balance payments, less their refunds.")
    refunded_cents: int = Field(description="Refunded of the booking's payments.")
    due_cents: int = Field(description="The booking's total less what was captured; 0 once it is cancelled.")
    currency: str


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
