"""Request and response models of tip_jar."""
import uuid
from datetime import datetime

from pydantic import BaseModel, Field


class TipIn(BaseModel):
    amount_cents: int = Field(gt=0, description="The tip in cents (at most the max_tip_cents setting).")
    currency: str = Field("USD", pattern="^[A-Z]{3}$")
    message: str | None = Field(None, max_length=500, description="A note for the chef.")


class TipOut(BaseModel):
    booking_id: uuid.UUID
    status: str
    amount_cents: int
    currency: str
    message: str | None
    given_at: datetime | None
