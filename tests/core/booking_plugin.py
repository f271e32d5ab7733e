"""A test plugin implementing every booking extension point, behind its own flag."""
from __future__ import annotations

from myhibachi.core import Plugin, hookimpl
from myhibachi.core.hookspecs import Refusal, SlotLimit
from myhibachi.core.models import bookings

FLAG = "FEATURE_FLAG_TEST_BOOKING_HOOKS"


class BookingHooks(Plugin):
    name = "booking_hooks"
    version = "1.0.0"
    flag = FLAG

    def __init__(self) -> None:
        self.seen: list = []
        self.stored: list = []

    @hookimpl
    async def validate_booking(self, booking, conn):
        self.seen.append(booking)
        extra = booking.extra
        if extra.get("refuse"):
            return Refusal(f"the test plugin refuses: {extra['refuse']}")
        if extra.get("taken"):
            return Refusal("the grill is taken", 409)
        return None

    @hookimpl
    def price_booking(self, booking, lines):
        if booking.extra.get("promo") == "TENOFF":
            base = sum(line["amount_cents"] for line in lines)
            return [{"code": "promo.tenoff", "label": "10% off", "amount_cents": -(base // 10)}]
        if booking.extra.get("promo") == "FREE":
            return [{"code": "promo.free", "label": "everything off and more", "amount_cents": -10_000_000}]
        return None

    @hookimpl
    def booking_query_filters(self, params):
        if "zip" in params:
            return [bookings.c.zip_code == params["zip"]]
        return None

    @hookimpl
    def booking_limits(self, booking, starts):
        value = booking.extra.get("capacity")
        if booking.notes == "no mondays":
            return SlotLimit(None, [Refusal("not on mondays") if s.weekday() == 0 else None for s in starts])
        return None if value is None else SlotLimit("booking_hooks", [int(value)] * len(starts))

    @hookimpl
    def booking_stored(self, booking, previous):
        self.stored.append((booking, previous))


class PoolPlugin(Plugin):
    """Splits capacity into pools named by ``extra.pool`` (as locations splits it by place)."""

    name = "pools"
    version = "1.0.0"
    flag = "FEATURE_FLAG_POOLS"

    @hookimpl
    def booking_limits(self, booking, starts, ctx):
        pool = booking.extra.get("pool")
        return SlotLimit(f"pool:{pool}", [ctx.settings.booking_capacity] * len(starts)) if pool else None
