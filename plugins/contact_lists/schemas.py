"""Request and response models of the contact lists and opt-out API."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from myhibachi.core import NextCursor

Channel = Literal["sms", "email"]
# the bookings' own ZIP form: a rule no booking could match is refused, and so is what
# PostgreSQL's JSONB cannot hold (a NUL)
Zip = Annotated[str, Field(pattern=r"^\d{5}(-\d{4})?$")]


class Rules(BaseModel, extra="forbid"):
    """Customers with at least one confirmed or completed booking matching every rule given."""

    booked_within_days: int | None = Field(default=None, ge=1, le=3660, description="Booked in the last N days.")
    min_party_size: int | None = Field(default=None, ge=1, description="A booking of at least this many guests.")
    zip_codes: list[Zip] | None = Field(default=None, min_length=1, max_length=500,
                                        description="A booking at one of these ZIP codes (a location's area).")


class ListCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    rules: Rules | None = Field(default=None, description="A rule-based segment; omit for a static list.")


class ContactList(BaseModel):
    id: uuid.UUID
    name: str
    kind: Literal["static", "rules"]
    rules: Rules | None
    created_at: datetime


class ContactsAdd(BaseModel):
    customer_ids: list[uuid.UUID] = Field(min_length=1, max_length=10_000)


class Added(BaseModel):
    added: int = Field(description="Customers newly added (ones already on the list are skipped).")
    count: int = Field(description="Members of the list now.")


class Members(BaseModel):
    count: int = Field(description="Every member of the list (a segment is counted now, in SQL).")
    sample: list[uuid.UUID] = Field(description="The first members, by id.")


class OptOutPage(BaseModel):
    items: list[OptOut]
    next_cursor: NextCursor


class OptOutRequest(BaseModel):
    channel: Channel | None = Field(default=None, description="Signed in: the channel to leave.")
    token: str | None = Field(default=None, description="An unsubscribe link's token (no sign-in needed).")


class OptOutDone(BaseModel):
    channel: Channel
    changed: bool = Field(description="False when it was opted out already.")


class OptOut(BaseModel):
    channel: Channel
    keyword: str | None = Field(description="What opted it out: STOP, unsubscribe, customer, link ...")
    created_at: datetime
    updated_at: datetime
