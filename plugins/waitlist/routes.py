"""The waitlist API, thin over the service."""
from __future__ import annotations

import uuid
from datetime import date

from fastapi import APIRouter, Depends, Request

from myhibachi.core import CURSOR, LIMIT, Conn, Connection, Principal, authenticated, error_responses, idempotency, require
from myhibachi.plugins.waitlist import service
from myhibachi.plugins.waitlist.schemas import Convert, Entry, EntryCreate, EntryPage, Status


def add_routes(router: APIRouter, ctx) -> None:
    base = "/bookings/waitlist"

    @router.post(base, response_model=Entry, status_code=201, responses=error_responses(401, 403, 409, 422),
                 summary="Wait for a date (and time): a customer for themselves, staff for anyone")
    @idempotency.idempotent(required=False)
    async def join(body: EntryCreate, request: Request, conn: Conn = Connection,
                   principal: Principal = Depends(authenticated)) -> Entry:
        return Entry(**await service.join(conn, ctx, principal, body))

    @router.get(base, response_model=EntryPage, responses=error_responses(401, 403, 422),
                summary="List waitlist entries, oldest first")
    async def list_(status: Status | None = None, requested_date: date | None = None,
                    customer_id: uuid.UUID | None = None, limit: int = LIMIT,
                    cursor: str | None = CURSOR, conn: Conn = Connection,
                    _: Principal = Depends(require("waitlist.read"))) -> EntryPage:
        return EntryPage(**await service.list_entries(conn, status=status, requested_date=requested_date,
                                                      customer_id=customer_id, limit=limit, cursor=cursor))

    @router.get(base + "/{entry_id}", response_model=Entry, responses=error_responses(401, 403, 404),
                summary="One entry, with the slot held for it")
    async def get(entry_id: uuid.UUID, conn: Conn = Connection,
                  principal: Principal = Depends(authenticated)) -> Entry:
        return Entry(**await service.get_entry(conn, principal, entry_id))

    @router.delete(base + "/{entry_id}", response_model=Entry, responses=error_responses(401, 403, 404),
                   summary="Leave the waitlist; a slot held for the entry goes to the next")
    async def remove(entry_id: uuid.UUID, conn: Conn = Connection,
                     principal: Principal = Depends(authenticated)) -> Entry:
        return Entry(**await service.remove(conn, ctx, principal, entry_id))

    @router.post(base + "/{entry_id}/convert", response_model=Entry, responses=error_responses(401, 403, 404, 409, 422),
                 summary="Book the entry: at the slot held for it, or at a free start of its day")
    @idempotency.idempotent(required=False)
    async def convert(entry_id: uuid.UUID, body: Convert, request: Request, conn: Conn = Connection,
                      principal: Principal = Depends(authenticated)) -> Entry:
        return Entry(**await service.convert(conn, ctx, principal, entry_id, body))
