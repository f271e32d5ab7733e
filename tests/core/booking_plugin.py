"""A test plugin implementing every booking extension point, behind its own flag."""
from __future__ import annotations

from myhibachi.core import Plugin, hookimpl
from myhibachi.core.models import bookings

FLAG = "FEATURE_FLAG_TEST_BOOKING_HOOKS"


class BookingHooks(Plugin):
    name = "booking_hooks"
    version = "1.0.0"
    flag = FLAG

    def __init__(self) -> None:
        self.seen: list[dict] = []

    @hookimpl
    async def validate_booking(self, booking, conn):
        self.seen.append(booking)
        extra = booking["extra"]
        if extra.get("refuse"):
            return f"the test plugin refuses: {extra['refuse']}"
        if extra.get("taken"):
            return {"status": 409, "reason": "the grill is taken"}
        if booking["notes"] == "no mondays" and booking["starts_at"].weekday() == 0:
            return "not on mondays"
        return None

    @hookimpl
    def price_booking(self, booking):
        if booking["extra"].get("promo") == "TENOFF":
            base = sum(line["amount_cents"] for line in booking["lines"])
            return [{"code": "promo.tenoff", "label": "10% off", "amount_cents": -(base // 10)}]
        if booking["extra"].get("promo") == "FREE":
            return [{"code": "promo.free", "label": "everything off and more", "amount_cents": -10_000_000}]
        return None

    @hookimpl
    def booking_query_filters(self, params):
        if "zip" in params:
            return [bookings.c.zip_code == params["zip"]]
        return None

    @hookimpl
    def booking_capacity(self, booking):
        value = booking["extra"].get("capacity")
        return None if value is None else int(value)


class PoolPlugin(Plugin):
    """Splits capacity into pools named by ``extra.pool`` (as locations splits it by place)."""

    name = "pools"
    version = "1.0.0"
    flag = "FEATURE_FLAG_POOLS"

    @hookimpl
    def booking_slot_scope(self, booking):
        return booking["extra"].get("pool")
