"""A test plugin implementing every booking extension point, behind its own flag."""
from __future__ import annotations

from pydantic import BaseModel

from myhibachi.core import Plugin, hookimpl
from myhibachi.core.hookspecs import Refusal, SlotLimit
from myhibachi.core.models import bookings

FLAG = "FEATURE_FLAG_TEST_BOOKING_HOOKS"


class Asks(BaseModel):
    """What a test asks of the plugin, as ``{"booking_hooks": {...}}`` (or query parameters)."""

    refuse: str | None = None
    taken: bool | None = None
    promo: str | None = None
    capacity: int | None = None


NOTHING = Asks()


def asked(booking, name: str = "booking_hooks"):
    return booking.inputs.get(name) or NOTHING


class BookingHooks(Plugin):
    name = "booking_hooks"
    version = "1.0.0"
    flag = FLAG

    def __init__(self) -> None:
        self.seen: list = []
        self.stored: list = []

    @hookimpl
    def register_fields(self):
        return {"booking_create": Asks, "booking_update": Asks, "quote": Asks, "availability": Asks}

    @hookimpl
    async def validate_booking(self, booking, conn):
        self.seen.append(booking)
        extra = asked(booking)
        if extra.refuse:
            return Refusal(f"the test plugin refuses: {extra.refuse}")
        if extra.taken:
            return Refusal("the grill is taken", 409)
        return None

    @hookimpl
    def price_booking(self, booking, lines):
        if asked(booking).promo == "TENOFF":
            base = sum(line["amount_cents"] for line in lines)
            return [{"code": "promo.tenoff", "label": "10% off", "amount_cents": -(base // 10)}]
        if asked(booking).promo == "FREE":
            return [{"code": "promo.free", "label": "everything off and more", "amount_cents": -10_000_000}]
        return None

    @hookimpl
    def booking_query_filters(self, params):
        if "zip" in params:
            return [bookings.c.zip_code == params["zip"]]
        return None

    @hookimpl
    def booking_limits(self, booking, starts):
        value = asked(booking).capacity
        if booking.notes == "no mondays":
            return SlotLimit(None, [Refusal("not on mondays") if s.weekday() == 0 else None for s in starts])
        return None if value is None else SlotLimit("booking_hooks", [int(value)] * len(starts))

    @hookimpl
    def booking_stored(self, booking, previous):
        self.stored.append((booking, previous))


class PoolChoice(BaseModel):
    pool: str | None = None


class PoolPlugin(Plugin):
    """Splits capacity into pools named by ``{"pools": {"pool": ...}}`` (as locations splits it by place)."""

    name = "pools"
    version = "1.0.0"
    flag = "FEATURE_FLAG_POOLS"

    @hookimpl
    def register_fields(self):
        return {"booking_create": PoolChoice}

    @hookimpl
    def booking_limits(self, booking, starts, ctx):
        choice = booking.inputs.get("pools")
        pool = choice.pool if choice else None
        return SlotLimit(f"pool:{pool}", [ctx.settings.booking_capacity] * len(starts)) if pool else None
