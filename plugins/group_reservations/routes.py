"""The group reservations API, thin over the service."""
from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Request

from myhibachi.core import Conn, Connection, Principal, authenticated, error_responses, idempotency
from myhibachi.plugins.group_reservations import service
from myhibachi.plugins.group_reservations.schemas import (
    Group, GroupCancel, GroupCreate, GuestsUpdate, ShareDeposit, ShareDepositCreate,
)


def add_routes(router: APIRouter, ctx) -> None:
    base = "/bookings/groups"

    @router.post(base, response_model=Group, status_code=201, responses=error_responses(401, 403, 409, 422),
                 summary="Book a group: one core booking per chef station, a guest list, a menu, split billing")
    @idempotency.idempotent(required=False)
    async def create(body: GroupCreate, request: Request, conn: Conn = Connection,
                     principal: Principal = Depends(authenticated)) -> Group:
        return Group(**await service.create_group(conn, ctx, principal, body))

    @router.get(base + "/{group_id}", response_model=Group, responses=error_responses(401, 403, 404))
    async def get(group_id: uuid.UUID, conn: Conn = Connection,
                  principal: Principal = Depends(authenticated)) -> Group:
        return Group(**await service.view(conn, ctx, await service.group_for(conn, principal, group_id, "groups.read")))

    @router.put(base + "/{group_id}/guests", response_model=Group, responses=error_responses(401, 403, 404, 409, 422),
                summary="Replace the guest list (closed after the menu deadline: 409)")
    async def guests(group_id: uuid.UUID, body: GuestsUpdate, conn: Conn = Connection,
                     principal: Principal = Depends(authenticated)) -> Group:
        group = await service.group_for(conn, principal, group_id, "groups.write", for_update=True)
        return Group(**await service.replace_guests(conn, ctx, principal, group, body))

    @router.post(base + "/{group_id}/deposits", response_model=ShareDeposit, status_code=201,
                 responses=error_responses(401, 403, 404, 409, 422, 503), summary="A payer pays their share's deposit")
    @idempotency.idempotent
    async def pay(group_id: uuid.UUID, body: ShareDepositCreate, request: Request, conn: Conn = Connection,
                  principal: Principal = Depends(authenticated)) -> ShareDeposit:
        """A payer (the customer billing names, the group's own for a payer naming none) pays a
        deposit of their own share, at most what it owes (422); another payer's share answers 404;
        staff with `payments.write` pay any. A decline answers 201 with status `failed`; pay again
        with a new key. The stations are confirmed once every share's deposit is paid."""
        key = f"{idempotency.scope_of(principal)}|{request.headers[idempotency.HEADER]}"
        return ShareDeposit(**await service.pay_share(conn, ctx, principal, group_id, body, key))

    @router.post(base + "/{group_id}/cancel", response_model=Group, responses=error_responses(401, 403, 404, 409, 422),
                 summary="Cancel the group: its stations, and each payer's deposit refunded once")
    async def cancel(group_id: uuid.UUID, body: GroupCancel | None = None, conn: Conn = Connection,
                     principal: Principal = Depends(authenticated)) -> Group:
        group = await service.group_for(conn, principal, group_id, "groups.write", for_update=True)
        return Group(**await service.cancel_group(conn, ctx, principal, group, body and body.reason))
