"""Request and response models of recurring."""
from __future__ import annotations

import uuid
from datetime import date, datetime, time

from pydantic import BaseModel, ConfigDict, Field

from myhibachi.core import NextCursor


class PatternFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recurrence_rule: str = Field(min_length=1, max_length=500, description="An iCal RRULE with COUNT or UNTIL.")
    start_date: date
    local_time: time = Field(description="Wall-clock start of every instance, kept across DST.")
    time_zone: str = Field(min_length=1, max_length=64, description="IANA time zone.")
    adults: int = Field(ge=0, le=10_000)
    children: int = Field(0, ge=0, le=10_000)
    address: str = Field(min_length=1, max_length=500)
    zip_code: str | None = Field(None, pattern=r"^\d{5}(-\d{4})?$")
    special_requests: str | None = Field(None, max_length=2000)


class PatternCreate(PatternFields):
    skip_conflicts: bool = Field(False, description="Create the free occurrences and report the others.")


class PatternUpdate(BaseModel):
    """Applies to this and the following instances; past ones are never touched."""

    model_config = ConfigDict(extra="forbid")

    recurrence_rule: str | None = Field(None, min_length=1, max_length=500)
    local_time: time | None = None
    adults: int | None = Field(None, ge=0, le=10_000)
    children: int | None = Field(None, ge=0, le=10_000)
    address: str | None = Field(None, min_length=1, max_length=500)
    special_requests: str | None = Field(None, max_length=2000)
    skip_conflicts: bool = True


class Conflict(BaseModel):
    date: date
    detail: str


class Pattern(BaseModel):
    id: uuid.UUID
    customer_id: uuid.UUID
    recurrence_rule: str
    start_date: date
    local_time: time
    time_zone: str
    adults: int
    children: int
    address: str
    zip_code: str | None
    special_requests: str | None
    status: str
    materialised_until: date
    conflicts: list[Conflict]
    created_at: datetime


class Instance(BaseModel):
    occurrence_date: date
    booking_id: uuid.UUID
    starts_at: datetime
    status: str


class InstancePage(BaseModel):
    items: list[Instance]
    next_cursor: NextCursor
