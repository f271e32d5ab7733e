"""Request and response models of voice_ai, and its events' payloads."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from myhibachi.core import NextCursor

Status = Literal["in_ivr", "routed", "transferred", "ended"]


class Call(BaseModel):
    id: uuid.UUID
    provider: str
    provider_call_id: str = Field(description="The provider's id of the call (Twilio's CallSid).")
    direction: str
    from_number: str | None
    to_number: str | None
    status: Status
    ivr_state: str
    intent: str | None = Field(description="Where the menu took the caller: book, change or agent.")
    sentiment_score: float | None = Field(description="The last utterance's sentiment, -1 (negative) to 1.")
    flagged_reason: str | None
    flagged_at: datetime | None
    transferred_to: str | None
    transferred_agent: str | None
    transferred_by: str | None
    transferred_at: datetime | None
    duration_seconds: int | None = Field(description="How long the call lasted, once the provider said it ended.")
    created_at: datetime


class Utterance(BaseModel):
    id: uuid.UUID
    seq: int
    source: Literal["audio", "ivr"] = Field(description="audio: transcribed here; ivr: the provider's speech result.")
    text: str
    sentiment: float = Field(description="VADER compound score, -1 (negative) to 1 (positive).")
    model: str | None
    elapsed_ms: int | None = Field(description="How long the transcription took.")
    created_at: datetime


class Transcribed(Utterance):
    call: Call = Field(description="The call after this utterance (its sentiment and flag).")


class TranscriptPage(BaseModel):
    items: list[Utterance]
    next_cursor: NextCursor


class Transfer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(pattern=r"^\+[1-9]\d{6,14}$", description="The agent's number (E.164).")
    agent: str | None = Field(None, max_length=100, description="The agent's name, recorded with the number.")


# --- events --------------------------------------------------------------------------------


class CallReceived(BaseModel):
    """A call reached the phone line and the IVR menu answered it."""

    call_id: str
    provider_call_id: str


class IvrRouted(BaseModel):
    """The IVR took a caller where they asked (``intent``: book, change, agent), or to a
    person after three failed tries (``escalated``)."""

    call_id: str
    intent: str
    escalated: bool


class UtteranceTranscribed(BaseModel):
    """Something said on a call was transcribed and scored (VADER compound, -1..1)."""

    call_id: str
    utterance_id: str
    seq: int
    sentiment: float
    phone_hash: str | None = Field(None, description=(
        "The customers' lookup hash (hex) of the number at the customer's end of the call, so a subscriber "
        "keeping the words can erase them with the customer; None when it is not a phone number."))


class CallFlagged(BaseModel):
    """A call turned sharply negative: a person should take it."""

    call_id: str
    utterance_id: str
    sentiment: float
    reason: str


class CallTransferred(BaseModel):
    """A call was handed to a person (``by``: the staff member, or ``ivr``)."""

    call_id: str
    to: str
    by: str
