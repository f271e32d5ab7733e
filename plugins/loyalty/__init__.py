"""Loyalty points (roadmap 2.4): a ledger of points earned on payments, redeemed on bookings, expiring FIFO.

A booking's payments earn when it is completed, on what they stand at then (the deposits
plugin's field of the booking view); a payment without a booking, or after the completion,
earns when it succeeds."""
from __future__ import annotations

from pydantic import BaseModel, Field

from myhibachi.core import Plugin, hookimpl


class LoyaltySettings(BaseModel):
    """The plugin's own settings, read from ``MYHIBACHI_LOYALTY_*``."""

    cents_per_point: int = Field(default=100, ge=1, description="Amount paid that earns one point ($1 = 1 point).")
    points_per_reward: int = Field(default=100, ge=1, description="Points redeemed in multiples of this.")
    reward_cents: int = Field(default=1000, ge=1, description="Discount for each `points_per_reward` points.")
    expiry_months: int = Field(default=12, ge=1, description="Points expire this long after they were earned.")
    silver_points: int = Field(default=1000, ge=1, description="Lifetime points for the silver tier.")
    gold_points: int = Field(default=5000, ge=1, description="Lifetime points for the gold tier.")
    platinum_points: int = Field(default=15000, ge=1, description="Lifetime points for the platinum tier.")
    bronze_percent: int = Field(default=100, ge=0, description="Earning multiplier of the bronze tier, in percent.")
    silver_percent: int = Field(default=125, ge=0, description="Earning multiplier of the silver tier, in percent.")
    gold_percent: int = Field(default=150, ge=0, description="Earning multiplier of the gold tier, in percent.")
    platinum_percent: int = Field(default=200, ge=0, description="Earning multiplier of the platinum tier, in percent.")
    batch_size: int = Field(default=500, ge=1, description="Expiring lots claimed per worker transaction.")

    def tier_of(self, lifetime: int) -> str:
        for tier, threshold in (("platinum", self.platinum_points), ("gold", self.gold_points),
                                ("silver", self.silver_points)):
            if lifetime >= threshold:
                return tier
        return "bronze"

    def percent_of(self, tier: str) -> int:
        return getattr(self, f"{tier}_percent")


class LoyaltyPlugin(Plugin):
    name = "loyalty"
    version = "1.0.0"
    flag = "FEATURE_FLAG_LOYALTY_POINTS"
    description = "Points earned on payments, redeemed as booking discounts, expiring after a year."
    features = {"2.4": ["test_customer_loyalty_points"]}
    permissions = ("loyalty.read", "loyalty.write")
    requires = ("deposits",)  # points are earned on its payment.* events
    settings = LoyaltySettings

    @hookimpl
    def register_event_handlers(self) -> dict[str, list]:
        from myhibachi.plugins.loyalty import service

        return {
            "payment.succeeded": [service.on_payment_succeeded],
            "payment.refunded": [service.on_payment_refunded],
            "booking.cancelled": [service.on_booking_cancelled],
            "booking.completed": [service.on_booking_completed],
        }

    @hookimpl
    def register_fields(self):
        from myhibachi.plugins.loyalty.schemas import CustomerPoints, PointsOnBooking
        from myhibachi.plugins.loyalty.service import CUSTOMER_COLUMNS

        return {"booking_create": PointsOnBooking, "booking_update": PointsOnBooking, "quote": PointsOnBooking,
                "customer": CustomerPoints, "customer_columns": CUSTOMER_COLUMNS}

    @hookimpl
    def customer_fields(self, customers, principal):
        from myhibachi.plugins.loyalty import service

        return {self.name: service.points_of(principal, customers)}

    @hookimpl
    async def price_booking(self, booking, lines, conn, ctx):
        from myhibachi.plugins.loyalty.bookings import price_line

        return await price_line(booking, lines, conn, ctx)

    @hookimpl
    async def validate_booking(self, booking, conn, ctx):
        from myhibachi.plugins.loyalty.bookings import validate

        return await validate(booking, conn, ctx)

    @hookimpl
    async def booking_stored(self, booking, previous, conn, ctx):
        from myhibachi.plugins.loyalty.bookings import redeem

        await redeem(booking, previous, conn, ctx)

    @hookimpl
    def register_cli(self, app) -> None:
        from myhibachi.plugins.loyalty.cli import cli

        app.add_typer(cli, name="loyalty")

    @hookimpl
    async def message_variables(self, customer_ids, conn):
        from myhibachi.plugins.loyalty.service import message_variables

        return await message_variables(conn, customer_ids)

    @hookimpl
    async def customer_export_sections(self, customer_id, conn, ctx):
        from myhibachi.plugins.loyalty.service import export_sections

        return await export_sections(conn, ctx, customer_id)

    @hookimpl
    async def customer_merge(self, source_id, target_id, conn, ctx):
        from myhibachi.plugins.loyalty.service import merge_customer

        await merge_customer(conn, ctx, source_id, target_id)

    @hookimpl
    async def customer_tier(self, customer_id, conn):
        from myhibachi.plugins.loyalty.service import tier_of

        return await tier_of(conn, customer_id)


plugin = LoyaltyPlugin()
