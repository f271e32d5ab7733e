"""Request and response models of the communications API."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from myhibachi.core import NextCursor

Kind = Literal["transactional", "marketing"]
Status = Literal["queued", "sending", "sent", "delivered", "failed", "bounced"]


class SmsSend(BaseModel):
    to: str | None = Field(default=None, description="E.164 number (+12025550123); omit to use the customer's.")
    customer_id: uuid.UUID | None = Field(default=None, description="The customer it is for.")
    body: str = Field(description="The text; its GSM-7 or UCS-2 segment count is checked and returned.")
    kind: Kind = Field(default="transactional", description="marketing needs the customer's recorded consent.")


class EmailSend(BaseModel):
    to: str | None = Field(default=None, description="Email address; omit to use the customer's.")
    customer_id: uuid.UUID | None = Field(default=None, description="The customer it is for.")
    subject: str = Field(description="One line.")
    text: str = Field(description="The plain-text body.")
    html: str | None = Field(default=None, description="An HTML alternative.")
    kind: Kind = Field(default="transactional", description="marketing needs the customer's recorded consent.")


class Message(BaseModel):
    id: uuid.UUID
    channel: Literal["sms", "email"]
    kind: Kind
    status: Status = Field(description="queued -> sending -> sent -> delivered, or failed / bounced.")
    to: str
    customer_id: uuid.UUID | None
    subject: str | None
    body: str
    html: str | None
    segments: int | None = Field(description="SMS only: segments the provider bills.")
    encoding: Literal["GSM-7", "UCS-2"] | None = Field(description="SMS only.")
    provider_id: str | None = Field(description="Twilio's message SID or the email provider's message id.")
    attempts: int
    last_error: str | None
    template_id: uuid.UUID | None = Field(None, description="The template it was rendered from, if one.")
    template_version: int | None = Field(None, description="That template's version.")
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    updated_at: datetime


class MessagePage(BaseModel):
    items: list[Message]
    next_cursor: NextCursor


class MessageSent(BaseModel):
    """The provider accepted a message (delivery follows in its status callbacks)."""

    message_id: str
    channel: Literal["sms", "email"]
    customer_id: str | None = None


class MessageOptedOut(BaseModel):
    """A number or address opted out (an inbound STOP, an email unsubscribe or spam report)."""

    channel: Literal["sms", "email"]
    address_hash: str = Field(description="The keyed hash (hex) of the normalised number or address, as the "
                              "opt-out list keys it: the address itself is not in the payload.")
    customer_id: str | None = Field(None, description="The one customer with that number, if one.")
