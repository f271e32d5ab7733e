"""Request and response models of payment history and reports; money is integer cents with a currency."""
from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from myhibachi.core import NextCursor

Kind = Literal["charge", "refund", "fee"]


class LedgerEntry(BaseModel):
    id: uuid.UUID
    kind: Kind
    payment_id: uuid.UUID
    booking_id: uuid.UUID
    customer_id: uuid.UUID
    amount_cents: int
    currency: str
    occurred_at: datetime
    location_id: uuid.UUID | None = Field(None, description="The booking's location (with the locations plugin).")


class LedgerPage(BaseModel):
    items: list[LedgerEntry]
    next_cursor: NextCursor


class Totals(BaseModel):
    period: str = Field(description="The local day (YYYY-MM-DD) or month (YYYY-MM).")
    currency: str
    gross_cents: int
    refunds_cents: int
    fees_cents: int = Field(description="The provider's fees on the period's charges.")
    net_cents: int = Field(description="Gross less refunds and fees.")
    count: int = Field(description="Charges in the period.")


class LocationTotals(Totals):
    location_id: uuid.UUID | None = Field(description="The bookings' location; null for bookings without one.")


class Report(BaseModel):
    time_zone: str
    first_day: date
    last_day: date
    group_by: Literal["day", "month"]
    by_location: bool = False
    rows: list[LocationTotals | Totals]


class ReportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    first_day: date
    last_day: date
    group_by: Literal["day", "month"] = "day"
    time_zone: str | None = Field(None, max_length=64)
    by_location: bool = Field(False, description="A row per location as well as per period and currency.")

    @model_validator(mode="after")
    def _order(self):
        if self.last_day < self.first_day:
            raise ValueError("last_day must not be before first_day")
        if (self.last_day - self.first_day).days > 366:
            raise ValueError("last_day: a report spans at most 366 days")
        return self


class ReportJob(BaseModel):
    """A custom report worked in the background; ``rows`` and the file links once ``done``."""

    id: uuid.UUID
    status: Literal["queued", "done", "failed"]
    first_day: date
    last_day: date
    group_by: Literal["day", "month"]
    time_zone: str
    by_location: bool
    created_at: datetime
    finished_at: datetime | None = None
    error: str | None = None
    rows: list[LocationTotals | Totals] | None = None
    csv_url: str | None = Field(None, description="The CSV once done.")
    pdf_url: str | None = Field(None, description="The PDF once done.")
