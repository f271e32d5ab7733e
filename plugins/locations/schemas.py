"""Request and response models of the locations API; validation names the bad field."""
from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

import phonenumbers
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from myhibachi.core import NextCursor, customers

ZIP = r"^\d{5}(-\d{4})?$"
ZipCode = Annotated[str, StringConstraints(pattern=ZIP)]
Status = Literal["active", "inactive", "maintenance"]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
MAX_GUESTS = 100_000  # a party the booking's own limits allow (adults and children up to 10,000 each)
CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _time_zone(value: str) -> str:
    if value not in _zones():
        raise ValueError(f"{value!r} is not an IANA time zone (for example America/New_York)")
    return value


def _phone(value: str) -> str:
    try:
        number = phonenumbers.parse(value, "US")
    except phonenumbers.NumberParseException as exc:
        raise ValueError("is not a phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError("is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _hours(value: tuple[str, str]) -> tuple[str, str]:
    opens, closes = value
    if not (CLOCK.match(opens) and CLOCK.match(closes)):
        raise ValueError("hours are HH:MM, 24-hour clock")
    if opens >= closes:
        raise ValueError("opening must come before closing")
    return value


TimeZone = Annotated[str, AfterValidator(_time_zone)]
Phone = Annotated[str, AfterValidator(_phone)]
Hours = Annotated[tuple[str, str], AfterValidator(_hours)]


class ServiceArea(BaseModel):
    """Where a location cooks: a list of zip codes, or a circle around a point."""

    zip_codes: list[ZipCode] | None = None
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    radius_km: float | None = Field(default=None, gt=0, le=1000)

    @model_validator(mode="after")
    def one_shape(self) -> "ServiceArea":
        circle = (self.lat, self.lon, self.radius_km)
        if self.zip_codes is None and any(v is None for v in circle):
            raise ValueError("give zip_codes, or lat, lon and radius_km")
        if any(v is not None for v in circle) and any(v is None for v in circle):
            raise ValueError("lat, lon and radius_km go together")
        return self


class LocationFields(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=255)
    address: str | None = Field(default=None, min_length=1)
    city: str | None = Field(default=None, min_length=1, max_length=100)
    state: str | None = Field(default=None, min_length=2, max_length=50)
    zip_code: ZipCode | None = None
    phone: Phone | None = None
    email: customers.EmailAddress | None = None
    time_zone: TimeZone | None = None
    capacity: int | None = Field(default=None, ge=1, le=MAX_GUESTS, description="The most guests one event serves.")
    events_per_slot: int | None = Field(default=None, ge=1, le=1000,
                                        description="Events the location runs at the same time.")
    status: Status | None = None
    service_area: ServiceArea | None = None
    hours: dict[Day, Hours] | None = Field(
        default=None, description='Opening hours by weekday in local time, e.g. {"sat": ["11:00", "22:00"]}; '
                                  "a day left out is closed.")
    metadata: dict[str, Any] | None = Field(default=None, description="Anything else: amenities, notes.")

    @field_validator("metadata")
    @classmethod
    def storable(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        try:  # PostgreSQL's JSON holds neither a lone surrogate nor NUL
            text = json.dumps(value, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise ValueError("must not contain lone surrogates (\\ud800-\\udfff)") from None
        if b"\\u0000" in text:
            raise ValueError("must not contain NUL characters")
        return value


class LocationCreate(LocationFields):
    name: str = Field(min_length=1, max_length=255)
    address: str = Field(min_length=1)
    city: str = Field(min_length=1, max_length=100)
    state: str = Field(min_length=2, max_length=50)
    zip_code: ZipCode
    time_zone: TimeZone
    capacity: int = Field(ge=1, le=MAX_GUESTS, description="The most guests one event serves.")
    events_per_slot: int = Field(default=1, ge=1, le=1000, description="Events the location runs at the same time.")
    status: Status = "active"


REQUIRED = ("name", "address", "city", "state", "zip_code", "time_zone", "capacity", "events_per_slot", "status")


class LocationUpdate(LocationFields):
    """Only the fields given change; optional ones are cleared with null."""

    @field_validator(*REQUIRED)
    @classmethod
    def not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null")
        return value


class Location(BaseModel):
    id: uuid.UUID
    name: str
    address: str
    city: str
    state: str
    zip_code: str
    phone: str | None
    email: str | None
    time_zone: str
    capacity: int
    events_per_slot: int
    status: Status
    service_area: ServiceArea | None
    hours: dict[str, tuple[str, str]] | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class LocationPage(BaseModel):
    items: list[Location]
    next_cursor: NextCursor


class LocationChoice(BaseModel):
    """Where a booking (or an availability query) goes: a location by id, else the one
    serving the booking's zip code, else the nearest whose radius covers ``lat``/``lon``."""

    model_config = ConfigDict(extra="forbid")

    location_id: uuid.UUID | None = Field(default=None, description="The location that takes the booking.")
    lat: float | None = Field(default=None, ge=-90, le=90, description="Where the event is, for a radius.")
    lon: float | None = Field(default=None, ge=-180, le=180)


class BookingLocation(BaseModel):
    """The location a booking was taken by, or an availability slot is offered by."""

    location_id: uuid.UUID | None = None
