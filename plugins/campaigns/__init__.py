"""Campaigns (roadmap 6.4): messages and campaigns to a contact list at a time (in each
recipient's time zone when asked), personalised, A/B tested, and measured.

A campaign's recipients are listed by a worker when it is due, then handed in batches to
the comms plugin's Messaging service (one message per recipient, keyed by campaign and
customer, so a crash never sends twice); opens (a tracking pixel), clicks (signed redirect
links) and conversions (a booking within N days) are recorded against each recipient.
"""
from __future__ import annotations

from pydantic import BaseModel, Field

from myhibachi.core import Plugin, hookimpl


class CampaignsSettings(BaseModel):
    """Read from ``MYHIBACHI_CAMPAIGNS_*``."""

    batch_size: int = Field(default=1000, ge=1, le=10_000, description="Recipients handed to comms per transaction.")
    alpha: float = Field(default=0.05, gt=0, lt=1, description="Significance level of the A/B tests' z-test.")


class CampaignsPlugin(Plugin):
    name = "campaigns"
    version = "1.0.0"
    flag = "FEATURE_FLAG_ADVANCED_COMMUNICATIONS"
    description = "Scheduled, personalised and A/B tested campaigns to contact lists, with their analytics."
    features = {"6.4": ["test_communication_scheduling", "test_communication_personalization",
                        "test_communication_ab_testing", "test_communication_analytics"]}
    permissions = ("campaigns.read", "campaigns.write")
    requires = ("comms", "comm_templates", "contact_lists")  # sends through comms, to lists, with templates
    settings = CampaignsSettings

    @hookimpl
    def register_event_handlers(self) -> dict[str, list]:
        from myhibachi.plugins.campaigns import service

        return {"booking.created": [service.on_booking_created]}

    @hookimpl
    async def customer_export_sections(self, customer_id, conn, ctx):
        from myhibachi.plugins.campaigns.service import export_sections

        return await export_sections(conn, customer_id)

    @hookimpl
    async def customer_merge(self, source_id, target_id, conn):
        from myhibachi.plugins.campaigns.service import merge_customer

        await merge_customer(conn, source_id, target_id)

    @hookimpl
    async def customer_erase(self, customer_id, conn):
        from myhibachi.plugins.campaigns.service import erase_customer

        await erase_customer(conn, customer_id)


plugin = CampaignsPlugin()
