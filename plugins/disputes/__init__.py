"""Payment disputes (roadmap 5.4): Stripe's ``charge.dispute.*`` events, received by the core's
webhook hub, kept with their evidence deadline; staff answer one with evidence, submitted
through the payments port once (a retried answer reuses its idempotency key).
"""
from __future__ import annotations

from myhibachi.core import Plugin, hookimpl


class DisputesPlugin(Plugin):
    name = "disputes"
    version = "1.0.0"
    flag = "FEATURE_FLAG_PAYMENT_DISPUTES"
    description = "Stripe disputes with their deadlines, answered with evidence through the payments port."
    features = {"5.4": ["test_payment_dispute_handling"]}
    requires = ("deposits",)
    permissions = ("payments.read", "payments.write")

    @hookimpl
    def register_events(self) -> list:
        from myhibachi.core import Event
        from myhibachi.plugins.disputes.schemas import DisputeOpened

        return [Event("payment.dispute_opened", DisputeOpened)]

    @hookimpl
    def register_event_handlers(self) -> dict[str, list]:
        from myhibachi.plugins.disputes import service

        return {"webhook.stripe": [service.on_stripe_event]}


plugin = DisputesPlugin()
