"""Request and response models of the templates API."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from myhibachi.core import NextCursor

Channel = Literal["sms", "email"]


class TemplateWrite(BaseModel):
    subject: str | None = Field(default=None, description="Email only: one line, may use variables.")
    text: str = Field(description="The SMS text or the email's plain text, with {variable} placeholders.")
    html: str | None = Field(default=None, description="Email only: the HTML part; values are HTML-escaped.")


class TemplateCreate(TemplateWrite):
    key: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9_.\-]+$",
                     description="What senders ask for, e.g. reminders.24h.")
    channel: Channel
    language: str = Field(default="en", pattern=r"^[a-z]{2}(-[A-Z]{2})?$", description="e.g. en, es, pt-BR.")


class Template(BaseModel):
    id: uuid.UUID
    key: str
    channel: Channel
    language: str
    version: int = Field(description="The current version; every edit adds one.")
    subject: str | None
    text: str
    html: str | None
    variables: list[str] = Field(description="The variables it uses.")
    created_at: datetime
    updated_at: datetime


class TemplatePage(BaseModel):
    items: list[Template]
    next_cursor: NextCursor


class PreviewRequest(BaseModel):
    values: dict[str, str] = Field(default_factory=dict, description="Values that replace the sample data.")
    version: int | None = Field(default=None, description="A past version; the current one by default.")


class Preview(BaseModel):
    version: int
    subject: str | None
    text: str
    html: str | None
    segments: int | None = Field(description="SMS only: the segments the rendered text takes.")
    encoding: Literal["GSM-7", "UCS-2"] | None
