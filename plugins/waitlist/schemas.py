"""Request and response models of waitlist, and its events' payloads."""
from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from myhibachi.core import NextCursor

Status = Literal["active", "offered", "converted", "expired", "lapsed", "cancelled"]


class EntryCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requested_date: date = Field(description="The local day wanted.")
    requested_time: str | None = Field(None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
                                       description="HH:MM local start wanted; left out: any time that day.")
    time_zone: str | None = Field(None, max_length=64, description="IANA time zone; default from settings.")
    party_size: int = Field(ge=1, le=10_000)
    zip_code: str | None = Field(None, pattern=r"^\d{5}(-\d{4})?$")
    expires_at: datetime | None = Field(None, description="When the entry stops waiting; default: the day's end.")
    priority: int | None = Field(None, ge=0, le=1000, description="Staff only: ranks before first come.")
    customer_id: uuid.UUID | None = Field(None, description="Staff only: the customer waiting.")


class Convert(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str = Field(min_length=1, max_length=500)
    zip_code: str | None = Field(None, pattern=r"^\d{5}(-\d{4})?$")
    starts_at: datetime | None = Field(None, description="Without an offer: a free start on the requested day.")
    notes: str | None = Field(None, max_length=2000)


class Offer(BaseModel):
    id: uuid.UUID
    starts_at: datetime
    ends_at: datetime
    time_zone: str
    status: str
    expires_at: datetime


class Entry(BaseModel):
    id: uuid.UUID
    customer_id: uuid.UUID
    requested_date: date
    requested_time: str | None
    time_zone: str
    party_size: int
    zip_code: str | None
    priority: int
    status: Status
    expires_at: datetime
    converted_booking_id: uuid.UUID | None
    offer: Offer | None = Field(None, description="The slot held for this entry, while it is offered.")
    created_at: datetime


class EntryPage(BaseModel):
    items: list[Entry]
    next_cursor: NextCursor


class WaitlistOffered(BaseModel):
    """A freed slot is held for a waitlist entry until ``expires_at`` and its customer was told."""

    entry_id: str
    offer_id: str
    customer_id: str
    starts_at: str
    expires_at: str


class WaitlistConverted(BaseModel):
    """A waitlist entry became a booking."""

    entry_id: str
    booking_id: str
    customer_id: str
