"""Request and response models of tip_jar."""
import uuid
from datetime import datetime

from pydantic import BaseModel, Field


class ItemIn(BaseModel):
    label: str = Field(min_length=1, max_length=200)


class ItemOut(BaseModel):
    id: uuid.UUID
    label: str
    created_at: datetime
