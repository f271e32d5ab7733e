"""The bookings' request and response models, and the time-zone helpers they render with."""
from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from myhibachi.core.errors import invalid
from myhibachi.core.pagination import NextCursor


def zone(name: str, field: str = "time_zone") -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise invalid(field, f"unknown IANA time zone {name!r}") from None


def wall_clock(start: datetime, tz: ZoneInfo) -> str:
    """A UTC start as the local time of ``tz``, without offset (``local_start``)."""
    return start.astimezone(tz).replace(tzinfo=None).isoformat()


_SURROGATE = re.compile("[\ud800-\udfff]")


def _no_nul(value: str | None) -> str | None:
    # PostgreSQL text cannot hold NUL nor a lone surrogate (JSON's "\ud800" decodes to one);
    # refuse them as bad input rather than fail on insert.
    if value is not None:
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        if not value.isascii() and _SURROGATE.search(value):
            raise ValueError("must not contain lone surrogates (\\ud800-\\udfff)")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]


class PriceLine(BaseModel):
    code: str = Field(max_length=60)
    label: str = Field(max_length=200)
    amount_cents: int


class BookingFields(BaseModel):
    """What a customer says about their event; plugins add their own typed fields, one per
    plugin, at start-up (``myhibachi.core.fields``)."""

    model_config = ConfigDict(extra="forbid")

    starts_at: datetime = Field(
        description="An aware ISO datetime, or a local one read in `time_zone`.")
    time_zone: Text | None = Field(
        None, max_length=64, description="IANA time zone of the event; default from settings.")
    duration_minutes: int | None = Field(None, ge=5, le=24 * 60)
    adults: int = Field(ge=0, le=10_000)
    children: int = Field(0, ge=0, le=10_000)
    address: Text = Field(min_length=1, max_length=500)
    zip_code: str | None = Field(None, pattern=r"^\d{5}(-\d{4})?$")
    menu: Text | None = Field(None, max_length=2000)
    notes: Text | None = Field(None, max_length=2000)


class BookingCreate(BookingFields):
    customer_id: uuid.UUID | None = Field(None, description="Staff only: the customer the booking is for.")


class QuoteRequest(BookingFields):
    starts_at: datetime | None = None
    address: Text = Field("", max_length=500)
    customer_id: uuid.UUID | None = None


class BookingUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    starts_at: datetime | None = None
    time_zone: Text | None = Field(None, max_length=64)
    duration_minutes: int | None = Field(None, ge=5, le=24 * 60)
    adults: int | None = Field(None, ge=0, le=10_000)
    children: int | None = Field(None, ge=0, le=10_000)
    address: Text | None = Field(None, min_length=1, max_length=500)
    zip_code: str | None = Field(None, pattern=r"^\d{5}(-\d{4})?$")
    menu: Text | None = Field(None, max_length=2000)
    notes: Text | None = Field(None, max_length=2000)


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Text | None = Field(None, max_length=500)


class Booking(BaseModel):
    id: uuid.UUID
    customer_id: uuid.UUID
    starts_at: datetime
    local_start: str = Field(description="The start as wall-clock time in the event's time zone.")
    time_zone: str
    duration_minutes: int
    adults: int
    children: int
    party_size: int
    address: str
    zip_code: str | None
    menu: str | None
    notes: str | None
    status: Literal["pending", "confirmed", "cancelled", "completed"]
    price_lines: list[PriceLine]
    total_cents: int
    currency: str
    cancel_reason: str | None = None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row, **plugins: Any) -> "Booking":
        data = dict(row)
        data["local_start"] = wall_clock(data["starts_at"], zone(data["time_zone"]))
        return cls(**data, **plugins)


class BookingPage(BaseModel):
    items: list[Booking]
    next_cursor: NextCursor


class Quote(BaseModel):
    lines: list[PriceLine]
    total_cents: int
    currency: str


class Slot(BaseModel):
    starts_at: datetime = Field(description="The start in UTC.")
    local_start: datetime = Field(description="The start in the requested time zone, with its offset there.")
    remaining: int
    capacity: int


class Availability(BaseModel):
    time_zone: str
    party_size: int
    duration_minutes: int
    slots: list[Slot]
