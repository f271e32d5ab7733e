"""Request and response models of the loyalty API."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from myhibachi.core import NextCursor

Tier = Literal["bronze", "silver", "gold", "platinum"]
Kind = Literal["earn", "redeem", "unredeem", "refund", "expire", "adjustment"]


class LoyaltySummary(BaseModel):
    customer_id: uuid.UUID
    points_balance: int
    lifetime_points: int
    points_debt: int = Field(description="Points a refund could not take back; paid from the next points earned.")
    tier: Tier
    earn_multiplier_percent: int
    next_tier: Tier | None
    points_to_next_tier: int | None
    redeemable_points: int = Field(description="The balance in whole rewards (multiples of 100 points).")
    redeemable_value_cents: int
    next_expiry_at: datetime | None
    next_expiry_points: int


class LoyaltyTransaction(BaseModel):
    id: uuid.UUID
    transaction_type: Kind
    points: int = Field(description="Positive when points are added, negative when they leave the balance.")
    balance_after: int
    debt_points: int
    description: str | None
    booking_id: uuid.UUID | None
    payment_id: str | None
    remaining: int = Field(description="For points added: how many of them are still unspent.")
    expires_at: datetime | None
    created_at: datetime


class LoyaltyHistory(BaseModel):
    items: list[LoyaltyTransaction]
    next_cursor: NextCursor


class Adjustment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    points: int = Field(ge=-1_000_000, le=1_000_000, description="Points to add (or, negative, to remove).")
    reason: str = Field(min_length=1, max_length=500, description="Why: kept in the ledger and the audit trail.")

    @field_validator("points")
    @classmethod
    def _nonzero(cls, v: int) -> int:
        if v == 0:
            raise ValueError("must not be zero")
        return v

    @field_validator("reason")
    @classmethod
    def _text(cls, v: str) -> str:
        if not v.strip() or "\x00" in v:
            raise ValueError("must be readable text")
        return v.strip()


class AdjustmentResult(BaseModel):
    transaction: LoyaltyTransaction
    account: LoyaltySummary


class Redemption(BaseModel):
    model_config = ConfigDict(extra="forbid")

    booking_id: uuid.UUID = Field(description="The customer's pending or confirmed booking the discount applies to.")
    points: int = Field(gt=0, le=10_000_000, description="A multiple of 100; 100 points take $10 off.")


class RedemptionResult(BaseModel):
    booking_id: uuid.UUID
    points_redeemed: int
    discount_cents: int
    booking_total_cents: int
    currency: str
    account: LoyaltySummary


class PointsOnBooking(BaseModel):
    """Points the customer redeems on a booking (or a quote): a positive multiple of the
    points per reward; the discount is capped at what the base price covers."""

    model_config = ConfigDict(extra="forbid")

    points: int | None = Field(default=None, ge=0, le=10_000_000, description="Points to redeem.")


class CustomerPoints(BaseModel):
    """The customer's points, on the customer view (``customer.loyalty``)."""

    points_balance: int
    tier: Tier
