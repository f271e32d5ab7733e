"""Recurring bookings (roadmap 1.3): an iCal RRULE series whose instances are real core
bookings, materialised for a rolling horizon."""
from __future__ import annotations

from pydantic import BaseModel, Field

from myhibachi.core import Plugin, hookimpl


class RecurringSettings(BaseModel):
    """Read from ``MYHIBACHI_RECURRING_*``."""

    horizon_days: int = Field(default=90, ge=1, le=730, description="How far ahead instances are created.")
    max_count: int = Field(default=520, ge=1, description="Largest COUNT a rule may have.")


class RecurringPlugin(Plugin):
    name = "recurring"
    version = "0.1.0"
    flag = "FEATURE_FLAG_RECURRING_BOOKINGS"
    description = "Recurring booking series (RRULE) whose instances are core bookings."
    features = {"1.3": ["test_booking_recurring_events"]}
    requires = ("reminders",)
    core = ">=0.1,<1"
    permissions = ("recurring.read", "recurring.write")
    settings = RecurringSettings

    @hookimpl
    async def rotate_keys(self, batch, conn, ctx):
        from myhibachi.plugins.recurring.service import rotate_keys

        return await rotate_keys(conn, ctx, batch=batch)


plugin = RecurringPlugin()
