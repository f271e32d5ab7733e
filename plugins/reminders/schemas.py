"""Request and response models of the reminders API."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field

from myhibachi.core import NextCursor

ReminderType = Literal["24h_before", "1h_before", "custom"]
Channel = Literal["email", "sms", "both"]
Status = Literal["pending", "sending", "sent", "failed", "cancelled"]


class ReminderCreate(BaseModel):
    reminder_type: ReminderType = Field(description="24h_before, 1h_before, or custom (give scheduled_at).")
    channel: Channel = Field(default="both", description="How the reminder is sent.")
    scheduled_at: AwareDatetime | None = Field(
        default=None, description="For custom reminders: when to send, in the future and before the event.")


class Reminder(BaseModel):
    id: uuid.UUID
    booking_id: uuid.UUID
    reminder_type: ReminderType
    channel: Channel
    scheduled_at: datetime
    status: Status
    sent_at: datetime | None
    attempts: int
    last_error: str | None
    created_at: datetime
    updated_at: datetime


class ReminderPage(BaseModel):
    items: list[Reminder]
    next_cursor: NextCursor
