"""Redeeming points on a booking through the core's booking hooks.

The customer asks with the booking's ``loyalty`` field: ``{"loyalty": {"points": 200}}``. ``price_booking``
turns that into a negative line (capped at what the booking's base price covers, in whole
rewards); ``validate_booking`` only checks the ask (and, before the booking exists, the
balance); ``booking_stored``, inside the booking's transaction, debits exactly the points
of the stored line under the account's lock, so two bookings racing for the same points
cannot both get them.
"""
from __future__ import annotations

from typing import Any

from myhibachi.core import BookingView, Problem, Refusal, bookings
from myhibachi.plugins.loyalty import service

KEY = "loyalty.points"
CODE = "loyalty.redeem"


def _asked(booking: BookingView) -> int | None:
    field = booking.inputs.get("loyalty")
    return field.points if field else None


async def price_line(booking: BookingView, lines: tuple[dict[str, Any], ...], conn,
                     ctx) -> list[dict[str, Any]] | None:
    s = service.settings_of(ctx)
    points = None
    if booking.stored:  # a booking being created has redeemed nothing
        found = await service.redemption_of(conn, booking.id)
        points = -found["points"] if found else None
    if points is None:
        asked = _asked(booking)
        if not asked or asked % s.points_per_reward:
            return None
        base = sum(line["amount_cents"] for line in lines)
        points = min(asked, max(base, 0) // s.reward_cents * s.points_per_reward)
    if points <= 0:
        return None
    return [{"code": CODE, "label": f"{points} loyalty points",
             "amount_cents": -service.discount_cents(s, points)}]


async def validate(booking: BookingView, conn, ctx) -> Refusal | None:
    asked = _asked(booking)
    if asked is None or asked == 0:
        return None
    s = service.settings_of(ctx)
    try:
        service.check_points(s, asked)
    except Problem:
        return Refusal(f"{KEY} must be a positive multiple of {s.points_per_reward}", field=KEY)
    if booking.customer_id is None:
        return Refusal(f"{KEY} needs the booking's customer")
    if booking.stored:
        return None  # booking_stored compares with what was redeemed
    account = await service.find_account(conn, booking.customer_id)
    balance = account["points_balance"] if account else 0
    # the balance itself is not told: the caller may be staff who may book but not read loyalty
    return None if asked <= balance else Refusal(f"{KEY}: not that many loyalty points are available", field=KEY)


async def redeem(booking: BookingView, previous: BookingView | None, conn, ctx) -> None:
    """Debit the points of the stored line, once per booking."""
    asked = _asked(booking)
    if not asked:
        return
    s = service.settings_of(ctx)
    found = await service.redemption_of(conn, booking.id) if previous is not None else None
    if found is not None:
        if -found["points"] == asked:
            return
        raise bookings.problem_of(
            Refusal("points are already redeemed for this booking; cancelling it gives them back", 409))
    line = next((ln for ln in booking.price_lines if ln["code"] == CODE), None)
    if line is None:
        raise bookings.problem_of(Refusal(f"the booking's price is too small to redeem {s.points_per_reward} points"))
    points = -line["amount_cents"] // s.reward_cents * s.points_per_reward
    try:
        await service.redeem_for_booking(conn, ctx, booking.customer_id, booking.id, points)
    except Problem as problem:
        raise bookings.problem_of(Refusal(problem.detail, 409)) from None
