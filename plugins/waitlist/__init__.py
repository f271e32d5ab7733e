"""Booking waitlist (roadmap 1.4): customers wait for a full date; a cancellation offers the
freed slot to the best entry, held for it a while, and the offer converts to a booking."""
from __future__ import annotations

from pydantic import BaseModel, Field

from myhibachi.core import Plugin, hookimpl


class WaitlistSettings(BaseModel):
    """Read from ``MYHIBACHI_WAITLIST_*``."""

    hold_minutes: int = Field(default=120, ge=1, le=7 * 24 * 60,
                              description="How long a freed slot is held for the customer it is offered to.")
    tier_priority: str = Field(default="silver=1,gold=2,platinum=3",
                               description="Priority a customer's tier (customer_tier hook, e.g. loyalty) adds.")
    candidates: int = Field(default=20, ge=1, le=500, description="Entries tried per freed slot, best first.")

    def priority_of(self, tier: str | None) -> int:
        for part in self.tier_priority.split(","):
            name, _, value = part.partition("=")
            if tier and name.strip() == tier:
                return int(value)
        return 0


class WaitlistPlugin(Plugin):
    name = "waitlist"
    version = "0.1.0"
    flag = "FEATURE_FLAG_BOOKING_WAITLIST"
    description = "Waitlist entries offered the slots cancellations free, held for a while, converted to bookings."
    features = {"1.4": ["test_booking_waitlist"]}
    requires = ("comms",)
    core = ">=0.1,<1"
    permissions = ("waitlist.read", "waitlist.write")
    settings = WaitlistSettings

    @hookimpl
    def register_events(self):
        from myhibachi.core import Event
        from myhibachi.plugins.waitlist.schemas import WaitlistConverted, WaitlistOffered

        return [Event("waitlist.offered", WaitlistOffered), Event("waitlist.converted", WaitlistConverted)]

    @hookimpl
    def register_event_handlers(self):
        from myhibachi.plugins.waitlist import service

        return {"booking.cancelled": [service.on_booking_cancelled]}

    @hookimpl
    async def customer_export_sections(self, customer_id, conn, ctx):
        from myhibachi.plugins.waitlist.service import export_sections

        return await export_sections(conn, customer_id)


plugin = WaitlistPlugin()
