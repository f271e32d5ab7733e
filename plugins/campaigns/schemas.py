"""Request and response models of the campaigns API."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

Channel = Literal["sms", "email"]
Metric = Literal["opened", "clicked", "converted"]


class Content(BaseModel, extra="forbid"):
    """A template by key (rendered per recipient, with their values), or inline text sent as it is."""

    template_key: str | None = Field(default=None, max_length=100,
                                     description="A comm_templates key of the channel, e.g. campaigns.spring.")
    subject: str | None = Field(default=None, max_length=255, description="Email, inline: the subject.")
    text: str | None = Field(default=None, max_length=100_000, description="Inline: the SMS text or email text.")
    html: str | None = Field(default=None, max_length=100_000, description="Email, inline: the HTML part.")

    @model_validator(mode="after")
    def _one_source(self):
        if (self.template_key is None) == (self.text is None):
            raise ValueError("give either template_key or text")
        return self


class Audience(BaseModel, extra="forbid"):
    name: str = Field(min_length=1, max_length=200)
    list_id: uuid.UUID = Field(description="A contact list or rule-based segment (contact_lists).")
    channel: Channel
    kind: Literal["marketing", "transactional"] = Field(
        default="marketing", description="Marketing needs each recipient's recorded consent (comms).")
    send_at: datetime | None = Field(default=None, description="When to send (with an offset); omitted: now.")
    in_recipient_time_zone: bool = Field(
        default=False, description="send_at is a local time without an offset, sent at that time in each "
                                   "recipient's zone (their latest booking's), else in time_zone.")
    time_zone: str = Field(default="UTC", max_length=64, description="The zone of recipients with no booking.")
    variables: dict[str, str] = Field(default_factory=dict, description="Template values shared by every recipient.")
    max_per_minute: int | None = Field(default=None, ge=1, le=1_000_000,
                                       description="Spread the sends to at most this many a minute (provider limits).")
    conversion_days: int = Field(default=7, ge=1, le=90,
                                 description="A booking this many days after the message counts as a conversion.")


class ScheduleRequest(Audience, Content):
    """A message to a list at a time: one content for every recipient."""


class Variant(Content):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$", description="e.g. A, B, short-subject.")
    share: int = Field(ge=1, le=100, description="Percent of the audience that gets this variant during the test.")


class AbTestRequest(Audience):
    variants: list[Variant] = Field(min_length=2, max_length=5, description="The first is the control.")
    metric: Metric = Field(default="clicked", description="What the winner is chosen by.")
    decide_after_minutes: int = Field(default=1440, ge=1, le=60 * 24 * 30,
                                      description="How long after the test's sends the winner is decided.")
    remainder_to_winner: bool = Field(
        default=True, description="The audience outside the variants' shares gets the winner once decided.")

    @field_validator("variants")
    @classmethod
    def _shares(cls, variants: list[Variant]) -> list[Variant]:
        names = [v.name for v in variants]
        if len(set(names)) < len(names):
            raise ValueError("variants need distinct names")
        total = sum(v.share for v in variants)
        if total > 100:
            raise ValueError(f"the variants' shares add up to {total}%, over 100%")
        return variants


class VariantShare(BaseModel):
    name: str
    share: int


class Progress(BaseModel):
    pending: int = Field(description="Due or waiting for their time.")
    held: int = Field(description="Waiting for the A/B test's winner.")
    sent: int = Field(description="Handed to comms (one message each).")
    refused: int = Field(description="Refused by comms (consent, opt-out, no address).")


class Campaign(BaseModel):
    id: uuid.UUID
    name: str
    list_id: uuid.UUID
    channel: Channel
    kind: str
    status: Literal["scheduled", "sending", "done", "cancelled"]
    send_at: datetime = Field(description="The instant; in recipients' zones, the local time read as UTC.")
    in_recipient_time_zone: bool
    time_zone: str
    due_at: datetime = Field(description="When the recipients are listed.")
    recipients: int | None = Field(description="Listed when it was due.")
    variants: list[VariantShare]
    metric: Metric | None
    decide_at: datetime | None
    winner: str | None
    decision: dict[str, Any] | None = Field(description="The A/B test's counts, z statistic and p-value.")
    progress: Progress
    created_at: datetime


class Counts(BaseModel):
    recipients: int
    pending: int
    held: int
    queued: int = Field(description="Handed to comms.")
    refused: int
    sent: int = Field(description="Accepted by the provider (delivered and bounced included).")
    delivered: int
    bounced: int
    failed: int
    opened: int = Field(description="Opened the email (its pixel, or a click).")
    clicked: int
    converted: int = Field(description="Booked within conversion_days of the message.")


class VariantCounts(Counts):
    variant: str | None = Field(description="None: held for the winner, not sent yet.")


class Analytics(Counts):
    campaign_id: uuid.UUID
    name: str
    status: str
    conversion_days: int
    variants: list[VariantCounts]
    winner: str | None
    decision: dict[str, Any] | None
