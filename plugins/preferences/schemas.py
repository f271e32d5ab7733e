"""The preferences API's request and response bodies."""
from __future__ import annotations

from datetime import datetime, time
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

Frequency = Literal["daily", "weekly", "monthly", "never"]
Source = Literal["web", "app", "phone", "email", "sms", "in_person", "api"]


def _zone(value: str | None) -> str | None:
    if value is None:
        return value
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("not an IANA time zone") from None
    return value


class Preferences(BaseModel):
    """A customer's preferences; a customer who never set any has these defaults."""

    email_marketing: bool = True
    email_transactional: bool = True
    sms_marketing: bool = False
    sms_transactional: bool = True
    marketing_frequency: Frequency = "weekly"
    language: str = Field("en", pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", description="BCP 47 tag, e.g. en, es-MX.")
    time_zone: str = Field("UTC", description="IANA zone the quiet hours are in.")
    quiet_start: time | None = Field(None, description="Start of quiet hours, local time.")
    quiet_end: time | None = Field(None, description="End of quiet hours, local time.")

    _zone = field_validator("time_zone")(_zone)


class PreferencesView(Preferences):
    customer_id: str
    updated_at: datetime | None = None


class PreferencesUpdate(BaseModel):
    """Only the fields given change; ``source`` is the channel the customer asked through."""

    model_config = ConfigDict(extra="forbid")

    email_marketing: bool | None = None
    email_transactional: bool | None = None
    sms_marketing: bool | None = None
    sms_transactional: bool | None = None
    marketing_frequency: Frequency | None = None
    language: str | None = Field(None, pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
    time_zone: str | None = None
    quiet_start: time | None = None
    quiet_end: time | None = None
    source: Source = "api"

    _zone = field_validator("time_zone")(_zone)

    @field_validator("email_marketing", "email_transactional", "sms_marketing", "sms_transactional",
                     "marketing_frequency", "language", "time_zone", mode="before")
    @classmethod
    def _not_null(cls, value):
        # null clears only the quiet hours; every other field always has a value
        if value is None:
            raise ValueError("may not be null")
        return value


class PreferencesChanged(BaseModel):
    """A customer's preferences changed (``changes``: ``{field: {"old", "new"}}``)."""

    customer_id: str
    source: str
    changes: dict[str, dict]
