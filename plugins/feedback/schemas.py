"""The feedback API's request and response bodies, and its event's payload."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from myhibachi.core import NextCursor

Sentiment = Literal["positive", "neutral", "negative"]


class FeedbackIn(BaseModel):
    """A customer's feedback on one of their completed bookings (one per booking)."""

    model_config = ConfigDict(extra="forbid")

    booking_id: uuid.UUID = Field(description="The customer's own booking, completed.")
    rating: int = Field(ge=1, le=5, description="1 (poor) to 5 (excellent).")
    text: str = Field(min_length=1, max_length=5000, description="What the customer says, in their words.")


class Feedback(BaseModel):
    id: uuid.UUID
    customer_id: uuid.UUID
    booking_id: uuid.UUID
    rating: int
    text: str
    sentiment: Sentiment = Field(description="From the text's VADER compound score: >= 0.05 positive, <= -0.05 negative.")
    sentiment_score: float = Field(description="VADER compound score of the text, -1 (negative) to 1 (positive).")
    submitted_by: str = Field(description="Who recorded it: the customer, or the staff key on their behalf.")
    created_at: datetime


class FeedbackPage(BaseModel):
    items: list[Feedback]
    next_cursor: NextCursor


class Counts(BaseModel):
    positive: int = 0
    neutral: int = 0
    negative: int = 0


class Month(BaseModel):
    month: str = Field(description="YYYY-MM, in the summary's time zone.")
    count: int
    average_rating: float
    average_sentiment: float
    sentiments: Counts


class Summary(BaseModel):
    customer_id: uuid.UUID | None = Field(description="The customer summed up; null for everyone's feedback.")
    time_zone: str
    count: int
    average_rating: float | None = Field(description="Null when there is no feedback.")
    average_sentiment: float | None
    sentiments: Counts
    ratings: dict[str, int] = Field(description="How many feedbacks gave each rating, 1 to 5.")
    months: list[Month] = Field(description="The trend: one entry per month with feedback, oldest first.")


class FeedbackSubmitted(BaseModel):
    """A customer left feedback on a completed booking (its words stay in the feedback plugin's sealed row)."""

    feedback_id: str
    customer_id: str
    booking_id: str
    rating: int
    sentiment: str
