"""Request and response models of group_reservations."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class GroupTable(BaseModel):
    """The group station a booking is (set by the plugin when it books a station)."""

    model_config = ConfigDict(extra="forbid")

    group_id: uuid.UUID
    table_no: int = Field(ge=1, le=100)


class MenuItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=40)
    label: str = Field(min_length=1, max_length=200)
    surcharge_cents: int = Field(0, ge=0, le=1_000_000)


class Guest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    contact: str | None = Field(None, max_length=200, description="Phone or email.")
    child: bool = False
    dietary: str | None = Field(None, max_length=500)
    allergens: list[str] = Field(default_factory=list, max_length=20)
    menu_choice: str = Field(min_length=1, max_length=40, description="A code of the group menu.")
    table: int = Field(1, ge=1, le=100, description="The chef station the guest sits at.")
    payer: str = Field(min_length=1, max_length=200, description="A payer's name from billing.")


class Payer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    amount_cents: int | None = Field(None, ge=0, description="by_amount: what this payer pays.")
    customer_id: uuid.UUID | None = Field(
        None, description="The customer who pays this share (their own deposit); unset: the group's customer.")


class Billing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    split: Literal["by_guest", "by_amount"] = "by_guest"
    payers: list[Payer] = Field(min_length=1, max_length=100)


class GroupCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    starts_at: datetime
    time_zone: str | None = Field(None, max_length=64)
    address: str = Field(min_length=1, max_length=500)
    zip_code: str | None = Field(None, pattern=r"^\d{5}(-\d{4})?$")
    location_id: uuid.UUID | None = Field(None, description="The location whose stations the tables are.")
    customer_id: uuid.UUID | None = Field(None, description="Staff: the customer the group is for.")
    menu: list[MenuItem] = Field(min_length=1, max_length=50)
    guests: list[Guest] = Field(min_length=1, max_length=500)
    billing: Billing


class GuestsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    guests: list[Guest] = Field(min_length=1, max_length=500)
    billing: Billing | None = None


class Station(BaseModel):
    table_no: int
    booking_id: uuid.UUID
    party_size: int
    total_cents: int


class ShareDepositCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"payer": "Bo", "payment_method": "pm_card_visa"}]})

    payer: str = Field(min_length=1, max_length=200, description="The payer (of billing) whose share this pays.")
    payment_method: str = Field(min_length=3, max_length=255, pattern=r"^[A-Za-z0-9_]+$",
                                description="The provider's payment method id (pm_card_visa in tests).")
    amount_cents: int | None = Field(
        None, ge=1, le=100_000_000,
        description="The deposit in cents, at most what the share owes; unset: the deposits plugin's rule on it.")


class GroupCancel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=500)


class ShareDeposit(BaseModel):
    """One payer's deposit of their share (a payment of the deposits plugin)."""

    id: uuid.UUID
    payer: str
    booking_id: uuid.UUID = Field(description="The group's station booking its payments are taken on.")
    customer_id: uuid.UUID
    amount_cents: int
    currency: str
    status: str
    intent_id: str
    client_secret: str | None
    captured_cents: int
    refunded_cents: int
    failure_reason: str | None


class Share(BaseModel):
    payer: str
    amount_cents: int
    customer_id: uuid.UUID | None = Field(None, description="Who pays it (the group's customer when unset).")
    deposit_status: str = Field("none", description="Its latest deposit's status; `none` without one.")
    deposit_id: uuid.UUID | None = None


class Group(BaseModel):
    id: uuid.UUID
    customer_id: uuid.UUID
    location_id: uuid.UUID | None
    starts_at: datetime
    time_zone: str
    menu: list[MenuItem]
    guests: list[Guest]
    billing: Billing
    tables: list[Station]
    total_cents: int
    shares: list[Share] = Field(description="What each payer owes; they sum to total_cents.")
    billing_booking_id: uuid.UUID | None = Field(None, description="The station booking the payers' deposits are "
                                                                   "taken on.")
    deposit_status: str = Field(
        "none", description="Over every share's deposit: `succeeded` once each share owing money has its deposit "
                            "captured, `partially_paid` while some have, else the latest's status or `none`.")
    menu_deadline: datetime
