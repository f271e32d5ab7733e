"""Payment disputes and reconciliation (roadmap 5.4): Stripe's ``charge.dispute.*`` events,
received by the core's webhook hub, kept with their evidence deadline; staff answer one with
evidence, submitted through the payments port once (a retried answer reuses its idempotency
key), and a periodic worker job reminds staff of each deadline once, before it passes. A
reconciliation matches the provider's balance transactions to the payments ledger
(``payment_history``'s service) and the bookings over a date range, as a resumable worker job;
bulk refunds and captures go through the deposits service an item at a time.
"""
from __future__ import annotations

from pydantic import BaseModel, Field

from myhibachi.core import Plugin, hookimpl


class DisputesSettings(BaseModel):
    """Read from ``MYHIBACHI_DISPUTES_*``."""

    reconcile_page_size: int = Field(default=100, ge=1, le=100, description="Provider transactions fetched per step.")
    reconcile_slack_minutes: int = Field(
        default=60, ge=0, description="The range is widened by this on both sides when matching (late events).")
    reconcile_retry_seconds: int = Field(default=30, ge=1, description="A run waits this long after a provider failure.")
    deadline_reminder_hours: int = Field(
        default=72, ge=1, description="Staff are reminded of a dispute's evidence deadline this long before it.")
    deadline_check_minutes: int = Field(default=15, ge=1, description="How often the worker looks for deadlines.")
    notify_email: str | None = Field(
        default=None, max_length=254, description="The staff inbox the deadline reminders go to (through comms).")


class DisputesPlugin(Plugin):
    name = "disputes"
    version = "1.0.0"
    flag = "FEATURE_FLAG_PAYMENT_DISPUTES"
    description = "Stripe disputes with their deadlines, answered with evidence through the payments port."
    features = {"5.4": ["test_payment_dispute_handling", "test_payment_reconciliation",
                        "test_payment_bulk_processing"]}
    requires = ("deposits", "payment_history", "comms")
    permissions = ("payments.read", "payments.write")
    settings = DisputesSettings

    @hookimpl
    def register_events(self) -> list:
        from myhibachi.core import Event
        from myhibachi.plugins.disputes.schemas import BulkCompleted, DisputeDueSoon, DisputeOpened, PaymentReconciled

        return [Event("payment.dispute_opened", DisputeOpened), Event("payment.reconciled", PaymentReconciled),
                Event("payment.bulk_completed", BulkCompleted), Event("payment.dispute_due_soon", DisputeDueSoon)]

    @hookimpl
    def register_event_handlers(self) -> dict[str, list]:
        from myhibachi.plugins.disputes import service

        return {"webhook.stripe": [service.on_stripe_event]}


plugin = DisputesPlugin()
