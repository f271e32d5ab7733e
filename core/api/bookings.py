"""Routes for bookings, availability and quotes; the logic lives in ``myhibachi.core.bookings``.

No ``from __future__ import annotations``: the routes are annotated with the models each app
composed (local names), which FastAPI must see as classes, not strings.
"""

import uuid
from datetime import datetime, timezone
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request

from myhibachi.core import bookings as svc
from myhibachi.core.auth import Principal, authenticated, current_principal, require
from myhibachi.core.context import app_context
from myhibachi.core.db import Conn
from myhibachi.core.routing import Connection
from myhibachi.core.errors import error_responses
from myhibachi.core.fields import Models
from myhibachi.core.idempotency import idempotent
from myhibachi.core.pagination import CURSOR, LIMIT

LIST_PARAMS = {"status", "starts_from", "starts_to", "customer_id", "cursor", "limit"}


def _aware(value: datetime | None) -> datetime | None:
    # A filter without an offset is read as UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def _rest(request: Request, known: set[str]) -> dict[str, str]:
    return {k: v for k, v in request.query_params.items() if k not in known}


def router(make, models: Models) -> APIRouter:
    """The booking routes, typed with the models the app's plugins extended (built once)."""
    r = make(tags=["bookings"])
    Booking, BookingCreate, BookingUpdate = models.booking, models.booking_create, models.booking_update

    @r.post("/bookings", response_model=Booking, status_code=201,
            responses=error_responses(401, 403, 409, 422))
    @idempotent(required=False)
    async def create_booking(body: BookingCreate, request: Request,
                             principal: Principal = Depends(authenticated), conn: Conn = Connection):
        """Book an event: a customer for themselves, staff (`bookings.write`) for any customer.
        A client that may retry sends an `Idempotency-Key`: a retry then gets the first answer."""
        ctx = request.app.state.ctx
        return (await svc.views(ctx, principal, [await svc.create_booking(conn, ctx, principal, body)]))[0]

    @r.post("/bookings/quote", response_model=svc.Quote, responses=error_responses(403, 409, 422))
    async def quote_booking(body: models.quote, principal: Principal = Depends(current_principal),
                            conn: Conn = Connection, ctx=Depends(app_context)):
        """Price a prospective booking as lines (base prices plus every plugin's lines)."""
        return await svc.quote(conn, ctx, principal, body)

    @r.get("/bookings", response_model=models.booking_page, responses=error_responses(401, 403, 422))
    async def list_bookings(
        request: Request,
        status: Literal["pending", "confirmed", "cancelled", "completed"] | None = None,
        starts_from: datetime | None = Query(None, description="Events starting at or after (UTC if no offset)."),
        starts_to: datetime | None = Query(None, description="Events starting before (UTC if no offset)."),
        customer_id: uuid.UUID | None = None,
        cursor: str | None = CURSOR,
        limit: int = LIMIT,
        principal: Principal = Depends(authenticated),
        conn: Conn = Connection,
    ):
        """Own bookings for a customer, any with `bookings.read`; newest first. Unknown query
        parameters go to the plugins' `booking_query_filters`."""
        rows, next_cursor = await svc.list_bookings(
            conn, request.app.state.ctx, principal, status=status, starts_from=_aware(starts_from),
            starts_to=_aware(starts_to), customer_id=customer_id, cursor=cursor, limit=limit,
            params=_rest(request, LIST_PARAMS))
        return models.booking_page(items=await svc.views(request.app.state.ctx, principal, rows),
                                   next_cursor=next_cursor)

    @r.get("/bookings/{booking_id}", response_model=Booking, responses=error_responses(401, 403, 404))
    async def get_booking(booking_id: uuid.UUID, request: Request, principal: Principal = Depends(authenticated),
                          conn: Conn = Connection):
        """One booking: its owner, or `bookings.read`."""
        ctx = request.app.state.ctx
        row = await svc.get_booking(conn, ctx, principal, booking_id, columns=ctx.models.booking_columns)
        return (await svc.views(ctx, principal, [row]))[0]

    @r.patch("/bookings/{booking_id}", response_model=Booking,
             responses=error_responses(401, 403, 404, 409, 422))
    async def update_booking(booking_id: uuid.UUID, body: BookingUpdate,
                             principal: Principal = Depends(authenticated), conn: Conn = Connection,
                             ctx=Depends(app_context)):
        """Reschedule or change a pending or confirmed booking: its owner, or `bookings.write`."""
        return (await svc.views(ctx, principal, [await svc.update_booking(conn, ctx, principal, booking_id, body)]))[0]

    @r.post("/bookings/{booking_id}/cancel", response_model=Booking,
            responses=error_responses(401, 403, 404, 409, 422))
    @idempotent(required=False)
    async def cancel_booking(booking_id: uuid.UUID, body: svc.CancelRequest | None = None,
                             principal: Principal = Depends(authenticated), conn: Conn = Connection,
                             ctx=Depends(app_context)):
        """Cancel a pending or confirmed booking: its owner, or `bookings.write`."""
        reason = body.reason if body else None
        row = await svc.transition(conn, ctx, principal, booking_id, "cancelled", reason=reason)
        return (await svc.views(ctx, principal, [row]))[0]

    @r.post("/bookings/{booking_id}/confirm", response_model=Booking,
            responses=error_responses(401, 403, 404, 409))
    @idempotent(required=False)
    async def confirm_booking(booking_id: uuid.UUID, principal: Principal = Depends(require("bookings.write")),
                              conn: Conn = Connection, ctx=Depends(app_context)):
        """Staff (`bookings.write`): confirm a pending booking."""
        return (await svc.views(ctx, principal, [await svc.transition(conn, ctx, principal, booking_id, "confirmed")]))[0]

    @r.post("/bookings/{booking_id}/complete", response_model=Booking,
            responses=error_responses(401, 403, 404, 409))
    @idempotent(required=False)
    async def complete_booking(booking_id: uuid.UUID, principal: Principal = Depends(require("bookings.write")),
                               conn: Conn = Connection, ctx=Depends(app_context)):
        """Staff (`bookings.write`): mark a confirmed booking as done."""
        return (await svc.views(ctx, principal, [await svc.transition(conn, ctx, principal, booking_id, "completed")]))[0]

    @r.get("/availability", response_model=models.availability_answer, tags=["availability"],
           responses=error_responses(422), openapi_extra=models.availability.openapi())
    async def availability(request: Request, principal: Principal = Depends(current_principal),
                           conn: Conn = Connection):
        """Bookable start times with their remaining capacity. Plugins declare their own query
        parameters (e.g. `location_id`); they reach the hooks in the booking's `inputs`."""
        q, inputs = models.availability.parse(request)
        return await svc.availability(
            conn, request.app.state.ctx, principal, start_day=q.start_day, end_day=q.end_day,
            party_size=q.party_size, time_zone=q.time_zone, duration_minutes=q.duration_minutes,
            zip_code=q.zip_code, inputs=inputs)

    return r
