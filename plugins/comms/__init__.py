"""Direct SMS and email (roadmap 6.1): the sending service every other plugin uses.

Other plugins send through its ``Messaging`` service (``myhibachi.core.services``), which
queues a message row in the caller's transaction; the worker's poller sends it through
``ctx.ports.sms`` / ``ctx.ports.email``; provider callbacks (through the core's webhook hub) move it to delivered, failed or
bounced; inbound STOP/START keep a per-number opt-out list.
"""
from __future__ import annotations

from pydantic import BaseModel, Field

from myhibachi.core import Messaging, Plugin, hookimpl


class CommsSettings(BaseModel):
    """The plugin's own settings, read from ``MYHIBACHI_COMMS_*``."""

    max_sms_segments: int = Field(default=10, ge=1, le=30,
                                  description="Longest SMS accepted, in segments (160/153 GSM-7, 70/67 UCS-2).")
    max_subject_chars: int = Field(default=255, ge=1, description="Longest email subject accepted.")
    max_email_chars: int = Field(default=100_000, ge=1, description="Longest email text (and html) accepted.")
    max_attempts: int = Field(default=5, ge=1, description="Provider tries before a message is marked failed.")
    retry_seconds: int = Field(default=30, ge=1, description="First retry delay; doubles on every attempt.")
    batch_size: int = Field(default=500, ge=1, description="Queued messages claimed per worker round.")
    concurrency: int = Field(default=8, ge=1, description="Provider calls one worker makes at once.")
    sending_timeout_minutes: int = Field(
        default=15, ge=1,
        description="A message left 'sending' this long (worker died mid-send) is failed, never re-sent.")


def messaging(ctx) -> Messaging:
    from myhibachi.plugins.comms.service import Messenger

    return Messenger(ctx)


class CommsPlugin(Plugin):
    name = "comms"
    version = "1.0.0"
    flag = "FEATURE_FLAG_DIRECT_COMMUNICATIONS"
    description = "Send SMS and email to customers or addresses, with history, delivery status and opt-outs."
    features = {"6.1": ["test_send_sms_direct", "test_send_email_direct"]}
    permissions = ("comms.send", "comms.read")
    services = {Messaging: messaging}
    settings = CommsSettings

    @hookimpl
    def register_events(self) -> list:
        from myhibachi.core import Event
        from myhibachi.plugins.comms.schemas import MessageOptedOut, MessageSent

        return [Event("message.sent", MessageSent), Event("message.opted_out", MessageOptedOut)]

    @hookimpl
    def register_event_handlers(self) -> dict[str, list]:
        from myhibachi.plugins.comms import service

        return {"webhook.twilio.status": [service.on_twilio_status],
                "webhook.twilio.inbound": [service.on_twilio_inbound],
                "webhook.sendgrid": [service.on_sendgrid_event]}

    @hookimpl
    async def may_send(self, customer_id, channel, kind, conn, ctx) -> str | None:
        from myhibachi.plugins.comms.service import consent_reason

        return await consent_reason(conn, ctx, customer_id, channel, kind)

    @hookimpl
    async def customer_export_sections(self, customer_id, conn, ctx):
        from myhibachi.plugins.comms.service import export_sections

        return await export_sections(conn, ctx, customer_id)

    @hookimpl
    async def customer_merge(self, source_id, target_id, conn, ctx):
        from myhibachi.plugins.comms.service import merge_customer

        await merge_customer(conn, ctx, source_id, target_id)

    @hookimpl
    async def customer_erase(self, customer_id, conn, ctx):
        from myhibachi.plugins.comms.service import erase_customer

        await erase_customer(conn, ctx, customer_id)

    @hookimpl
    async def rotate_keys(self, batch, conn, ctx):
        from myhibachi.plugins.comms.service import rotate_keys

        return await rotate_keys(conn, ctx, batch=batch)


plugin = CommsPlugin()
