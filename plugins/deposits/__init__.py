"""Booking deposits (roadmap 5.1): money paid ahead to hold a booking, through the payments port.

A deposit is the part of a booking's price a customer pays when booking, so the chef team's
time is held: by default a percentage of the booking's stored total with a minimum, or an
amount staff name. It is a PaymentIntent at the payments provider (Stripe, or the offline
adapter of the embedded default), tracked here as a small state machine:
``requires_payment -> processing -> succeeded -> partially_refunded | refunded``, or
``cancelled`` / ``failed``; it never moves backwards. When it succeeds the booking is
confirmed (an event handler on ``payment.succeeded``). Before capture a deposit can be
cancelled; after capture, cancelling refunds what is left, and refunds never exceed what
was captured. Stripe's events, received by the core's webhook hub (``/v1/webhooks/stripe``),
drive the same states, and a poller reconciles
deposits left processing or unconfirmed with the provider.
"""
from __future__ import annotations

from pydantic import BaseModel, Field

from myhibachi.core import DepositOperations, Plugin, hookimpl


class DepositsSettings(BaseModel):
    """The plugin's own settings, read from ``MYHIBACHI_DEPOSITS_*``."""

    percent: int = Field(default=20, ge=1, le=100, description="Deposit as a percentage of the booking's total.")
    minimum_cents: int = Field(default=10000, ge=1, description="Smallest deposit, in cents (never above the total).")
    stale_minutes: int = Field(
        default=30, ge=1, description="A deposit processing or unconfirmed this long is reconciled with the provider.")
    reconcile_every_minutes: int = Field(default=1440, ge=1, description="How often the worker reconciles (nightly).")
    reconcile_batch: int = Field(default=200, ge=1, description="Deposits reconciled per run.")
    cancel_refund_percent: int = Field(
        default=100, ge=0, le=100,
        description="Share of what a cancelled booking's payments captured that is refunded (a cancellation "
                    "policy lowers it).")


def operations(ctx) -> DepositOperations:
    from myhibachi.plugins.deposits.service import Operations

    return Operations(ctx)


class DepositsPlugin(Plugin):
    name = "deposits"
    version = "1.0.0"
    flag = "FEATURE_FLAG_DEPOSIT_API"
    description = "Booking deposits through Stripe PaymentIntents (create, confirm, cancel, refund, Stripe's events)."
    features = {"5.1": ["test_create_deposit_success", "test_list_deposits", "test_confirm_deposit",
                        "test_cancel_deposit", "test_refund_deposit"]}
    permissions = ("payments.read", "payments.write")
    settings = DepositsSettings
    services = {DepositOperations: operations}

    @hookimpl
    def register_events(self) -> list:
        from myhibachi.core import Event
        from myhibachi.plugins.deposits.schemas import PaymentFailed, PaymentRefunded, PaymentSucceeded

        return [Event("payment.succeeded", PaymentSucceeded), Event("payment.refunded", PaymentRefunded),
                Event("payment.failed", PaymentFailed)]

    @hookimpl
    def register_event_handlers(self) -> dict[str, list]:
        from myhibachi.plugins.deposits import service

        return {"payment.succeeded": [service.on_payment_succeeded], "webhook.stripe": [service.on_stripe_event],
                "booking.cancelled": [service.on_booking_cancelled]}

    @hookimpl
    def register_fields(self):
        from myhibachi.plugins.deposits.schemas import BookingPayments
        from myhibachi.plugins.deposits.service import PAYMENTS_COLUMN

        return {"booking": BookingPayments, "booking_columns": [PAYMENTS_COLUMN]}

    @hookimpl
    async def booking_fields(self, rows, ctx):
        from myhibachi.plugins.deposits import service

        return {self.name: await service.booking_fields(ctx, rows)}

    @hookimpl
    async def customer_export_sections(self, customer_id, conn, ctx):
        from myhibachi.plugins.deposits.service import export_sections

        return await export_sections(conn, ctx, customer_id)

    @hookimpl
    async def customer_merge(self, source_id, target_id, conn, ctx):
        from myhibachi.plugins.deposits.service import merge_customer

        await merge_customer(conn, ctx, source_id, target_id)


plugin = DepositsPlugin()
