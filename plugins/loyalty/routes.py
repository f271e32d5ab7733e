"""The loyalty API, thin over the service."""
from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query, Request

from myhibachi.core import (
    LIMIT,
    Conn, Connection, Principal, Problem, app_context, audit, authenticated, bookings, error_responses,
    idempotency, require,
)
from myhibachi.plugins.loyalty import service
from myhibachi.plugins.loyalty.bookings import CODE
from myhibachi.plugins.loyalty.schemas import (
    Adjustment, AdjustmentResult, LoyaltyHistory, LoyaltySummary, LoyaltyTransaction, Redemption, RedemptionResult,
)


def own_or(permission: str):
    """Dependency: a signed-in caller; customers reach only their own points (checked by the
    service), staff need ``permission``. Naming it lets the audit trail record staff writes."""

    async def dependency(principal: Principal = Depends(authenticated)) -> Principal:
        if principal.kind != "customer" and not principal.can(permission):
            raise Problem(403, "Forbidden", f"missing permission {permission}", kind="forbidden",
                          permission=permission)
        return principal

    dependency.permission = permission
    return dependency


def add_routes(router: APIRouter, ctx) -> None:
    base = "/customers/{customer_id}/loyalty"

    @router.get(base, response_model=LoyaltySummary, responses=error_responses(401, 403, 404, 422),
                summary="A customer's points balance, tier and next expiry")
    async def get_summary(customer_id: uuid.UUID, request: Request,
                          principal: Principal = Depends(own_or("loyalty.read")),
                          conn: Conn = Connection) -> LoyaltySummary:
        ctx = request.app.state.ctx
        await service.customer_for(conn, ctx, customer_id, principal, "loyalty.read")
        return LoyaltySummary(**await service.summary(conn, ctx, customer_id))

    @router.get(base + "/history", response_model=LoyaltyHistory, responses=error_responses(401, 403, 404, 422),
                summary="A customer's points transactions, newest first")
    async def get_history(customer_id: uuid.UUID, request: Request, limit: int = LIMIT,
                          cursor: str | None = Query(None, max_length=40), conn: Conn = Connection,
                          principal: Principal = Depends(own_or("loyalty.read"))) -> LoyaltyHistory:
        await service.customer_for(conn, request.app.state.ctx, customer_id, principal, "loyalty.read")
        items, nxt = await service.history(conn, customer_id, limit=limit, cursor=cursor)
        return LoyaltyHistory(items=[LoyaltyTransaction(**i) for i in items], next_cursor=nxt)

    @router.post(base + "/earn", response_model=AdjustmentResult, status_code=201,
                 responses=error_responses(401, 403, 404, 409, 422),
                 summary="Staff: add (or remove) points by hand, with a reason")
    @idempotency.idempotent(required=False)
    async def earn(customer_id: uuid.UUID, body: Adjustment, request: Request, conn: Conn = Connection,
                   principal: Principal = Depends(require("loyalty.write"))) -> AdjustmentResult:
        ctx = request.app.state.ctx
        await service.customer_for(conn, ctx, customer_id, principal, "loyalty.write")
        row = await service.adjust(conn, ctx, customer_id, body.points, body.reason, actor=principal.id)
        audit.note_change(request, "loyalty_account", customer_id,
                          {"points": {"old": None, "new": body.points}, "reason": {"old": None, "new": body.reason}},
                          action="loyalty.adjust")
        return AdjustmentResult(transaction=LoyaltyTransaction(**row),
                                account=LoyaltySummary(**await service.summary(conn, ctx, customer_id)))

    @router.post(base + "/redeem", response_model=RedemptionResult, status_code=201,
                 responses=error_responses(401, 403, 404, 409, 422),
                 summary="Redeem points as a discount on one of the customer's bookings")
    @idempotency.idempotent
    async def redeem(customer_id: uuid.UUID, body: Redemption, conn: Conn = Connection, ctx=Depends(app_context),
                     principal: Principal = Depends(own_or("loyalty.write"))) -> RedemptionResult:
        await service.customer_for(conn, ctx, customer_id, principal, "loyalty.write")
        service.check_points(service.settings_of(ctx), body.points, "points")
        booking = await bookings.get_booking(conn, ctx, principal, body.booking_id, permission="bookings.write")
        if booking["customer_id"] != customer_id:
            raise Problem(404, "Not Found", "no such booking for this customer", kind="not-found")
        if await service.redemption_of(conn, body.booking_id) is not None:
            raise Problem(409, "Conflict", "points are already redeemed for this booking", kind="conflict")
        row = await bookings.update_booking(conn, ctx, principal, body.booking_id,
                                            ctx.models.booking_update(loyalty={"points": body.points}))
        line = next((ln for ln in row["price_lines"] if ln["code"] == CODE), None)
        if line is None:
            raise Problem(422, "Booking refused", "the booking's price is too small for this redemption",
                          kind="booking-refused")
        redeemed = -(await service.redemption_of(conn, body.booking_id))["points"]
        return RedemptionResult(booking_id=body.booking_id, points_redeemed=redeemed,
                                discount_cents=-line["amount_cents"], booking_total_cents=row["total_cents"],
                                currency=row["currency"],
                                account=LoyaltySummary(**await service.summary(conn, ctx, customer_id)))
