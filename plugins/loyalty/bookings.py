"""Redeeming points on a booking through the core's booking hooks.

The customer asks in the booking's ``extra``: ``{"loyalty_points": 200}``. ``price_booking``
turns that into a negative line (capped at what the booking's base price covers, in whole
rewards), and ``validate_booking``, which runs with the booking row in place, debits exactly
the points of the stored line under the account's lock, so two bookings racing for the same
points cannot both get them. Quotes are checked against the balance without debiting.
"""
from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from myhibachi.core.errors import Problem
from myhibachi.core.models import bookings
from myhibachi.plugins.loyalty import service

KEY = "loyalty_points"
CODE = "loyalty.redeem"


def _asked(booking: dict[str, Any]) -> Any:
    return (booking.get("extra") or {}).get(KEY)


async def price_line(booking: dict[str, Any], conn, ctx) -> list[dict[str, Any]] | None:
    s = service.settings_of(ctx)
    points = None
    if booking.get("id") and booking.get("stored", True):  # a booking being created has redeemed nothing
        found = await service.redemption_of(conn, booking["id"])
        points = -found["points"] if found else None
    if points is None:
        asked = _asked(booking)
        if isinstance(asked, bool) or not isinstance(asked, int) or asked <= 0 or asked % s.points_per_reward:
            return None
        base = sum(line["amount_cents"] for line in booking.get("lines") or [])
        points = min(asked, max(base, 0) // s.reward_cents * s.points_per_reward)
    if points <= 0:
        return None
    return [{"code": CODE, "label": f"{points} loyalty points",
             "amount_cents": -service.discount_cents(s, points)}]


async def validate(booking: dict[str, Any], conn, ctx) -> str | dict[str, Any] | None:
    asked = _asked(booking)
    if asked is None or asked == 0:
        return None
    s = service.settings_of(ctx)
    try:
        service.check_points(s, asked)
    except Problem:
        return f"{KEY} must be a positive multiple of {s.points_per_reward}"
    if not booking.get("customer_id"):
        return f"{KEY} needs the booking's customer"
    customer_id = uuid.UUID(str(booking["customer_id"]))
    if not booking.get("id"):
        account = await service.find_account(conn, customer_id)
        balance = account["points_balance"] if account else 0
        return None if asked <= balance else f"only {balance} loyalty points are available"
    found = await service.redemption_of(conn, booking["id"])
    if found is not None:
        if -found["points"] == asked:
            return None
        return {"status": 409, "reason": "points are already redeemed for this booking; cancelling it gives them back"}
    lines = await conn.scalar(sa.select(bookings.c.price_lines).where(bookings.c.id == uuid.UUID(str(booking["id"])))
                                )
    line = next((ln for ln in lines or [] if ln["code"] == CODE), None)
    if line is None:
        return f"the booking's price is too small to redeem {s.points_per_reward} points"
    points = -line["amount_cents"] // s.reward_cents * s.points_per_reward
    try:
        await service.redeem_for_booking(conn, ctx, customer_id, uuid.UUID(str(booking["id"])), points)
    except Problem as problem:
        return {"status": 409, "reason": problem.detail}
    return None
