"""Booking reminders (roadmap 1.1): 24 h, 1 h and custom reminders by email and SMS, sent
through the comms plugin's Messaging service."""
from __future__ import annotations

from pydantic import BaseModel, Field

from myhibachi.core import Plugin, hookimpl


class RemindersSettings(BaseModel):
    """The plugin's own settings, read from ``MYHIBACHI_REMINDERS_*``."""

    defaults: str = Field(
        default="24h_before,1h_before",
        description="Reminder types created for every new booking (comma-separated; empty: none).",
    )
    default_channel: str = Field(default="both", description="Channel of the default reminders: email, sms or both.")
    batch_size: int = Field(default=500, ge=1, description="Due reminders claimed per worker transaction.")

    @property
    def default_types(self) -> list[str]:
        return [t.strip() for t in self.defaults.split(",") if t.strip()]


class RemindersPlugin(Plugin):
    name = "reminders"
    version = "1.0.0"
    flag = "FEATURE_FLAG_BOOKING_REMINDERS"
    description = "Reminders before a booking, sent by email and SMS through comms."
    features = {"1.1": ["test_booking_reminder_scheduling"]}
    requires = ("comms",)
    permissions = ("reminders.read", "reminders.write")
    settings = RemindersSettings

    @hookimpl
    def register_event_handlers(self) -> dict[str, list]:
        from myhibachi.plugins.reminders import service

        return {
            "booking.created": [service.on_booking_created],
            "booking.updated": [service.on_booking_updated],
            "booking.cancelled": [service.on_booking_cancelled],
        }

    @hookimpl
    async def customer_export_sections(self, customer_id, conn, ctx):
        from myhibachi.plugins.reminders.service import export_sections

        return await export_sections(conn, ctx, customer_id)


plugin = RemindersPlugin()
