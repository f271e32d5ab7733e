"""The group reservations API, thin over the service."""
from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Request

from myhibachi.core import Conn, Connection, Principal, authenticated, error_responses, idempotency
from myhibachi.plugins.group_reservations import service
from myhibachi.plugins.group_reservations.schemas import Group, GroupCreate, GuestsUpdate


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
