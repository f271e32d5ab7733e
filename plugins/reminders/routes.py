"""The reminders API, thin over the service."""
from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends

from myhibachi.core import LIMIT, Conn, Connection, Principal, authenticated, error_responses, idempotency
from myhibachi.plugins.reminders import service
from myhibachi.plugins.reminders.schemas import Reminder, ReminderCreate, ReminderPage


def add_routes(router: APIRouter, ctx) -> None:
    base = "/bookings/{booking_id}/reminders"

    @router.post(base, response_model=Reminder, status_code=201, responses=error_responses(401, 403, 404, 409, 422),
                 summary="Schedule a reminder for a booking")
    @idempotency.idempotent(required=False)
    async def create(booking_id: uuid.UUID, body: ReminderCreate, conn: Conn = Connection,
                     principal: Principal = Depends(authenticated)) -> Reminder:
        booking = await service.booking_for(conn, booking_id, principal, "reminders.write")
        return Reminder(**await service.create_reminder(conn, booking, body.reminder_type, body.channel,
                                                        body.scheduled_at))

    @router.get(base, response_model=ReminderPage, responses=error_responses(401, 403, 404, 422),
                summary="List a booking's reminders, soonest first")
    async def list_(booking_id: uuid.UUID, limit: int = LIMIT, cursor: str | None = None,
                    conn: Conn = Connection, principal: Principal = Depends(authenticated)) -> ReminderPage:
        await service.booking_for(conn, booking_id, principal, "reminders.read")
        return ReminderPage(**await service.list_reminders(conn, booking_id, limit=limit, cursor=cursor))

    @router.delete(base + "/{reminder_id}", response_model=Reminder, responses=error_responses(401, 403, 404, 409),
                   summary="Cancel a pending reminder")
    async def cancel(booking_id: uuid.UUID, reminder_id: uuid.UUID, conn: Conn = Connection,
                     principal: Principal = Depends(authenticated)) -> Reminder:
        await service.booking_for(conn, booking_id, principal, "reminders.write")
        return Reminder(**await service.cancel_reminder(conn, booking_id, reminder_id))
