"""The recurring bookings API, thin over the service."""
from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends

from myhibachi.core import LIMIT, Conn, Connection, Principal, authenticated, error_responses, idempotency
from myhibachi.plugins.recurring import service
from myhibachi.plugins.recurring.schemas import InstancePage, Pattern, PatternCreate, PatternUpdate


def add_routes(router: APIRouter, ctx) -> None:
    base = "/bookings/recurring"

    @router.post(base, response_model=Pattern, status_code=201, responses=error_responses(401, 403, 409, 422),
                 summary="Create a recurring series; 409 lists occurrences that cannot be booked")
    @idempotency.idempotent(required=False)
    async def create(body: PatternCreate, conn: Conn = Connection,
                     principal: Principal = Depends(authenticated)) -> Pattern:
        return Pattern(**await service.create_pattern(conn, ctx, principal, body))

    @router.get(base + "/{pattern_id}", response_model=Pattern, responses=error_responses(401, 403, 404))
    async def get(pattern_id: uuid.UUID, conn: Conn = Connection,
                  principal: Principal = Depends(authenticated)) -> Pattern:
        return Pattern(**await service.pattern_for(conn, ctx, principal, pattern_id, "recurring.read"))

    @router.put(base + "/{pattern_id}", response_model=Pattern, responses=error_responses(401, 403, 404, 409, 422),
                summary="Change this and the following instances")
    async def update(pattern_id: uuid.UUID, body: PatternUpdate, conn: Conn = Connection,
                     principal: Principal = Depends(authenticated)) -> Pattern:
        p = await service.pattern_for(conn, ctx, principal, pattern_id, "recurring.write", for_update=True)
        return Pattern(**await service.update_pattern(conn, ctx, principal, p, body))

    @router.delete(base + "/{pattern_id}", response_model=Pattern, responses=error_responses(401, 403, 404),
                   summary="Cancel the series: its future instances are cancelled")
    async def cancel(pattern_id: uuid.UUID, conn: Conn = Connection,
                     principal: Principal = Depends(authenticated)) -> Pattern:
        p = await service.pattern_for(conn, ctx, principal, pattern_id, "recurring.write", for_update=True)
        return Pattern(**await service.cancel_pattern(conn, ctx, principal, p))

    @router.get(base + "/{pattern_id}/instances", response_model=InstancePage,
                responses=error_responses(401, 403, 404, 422))
    async def list_instances(pattern_id: uuid.UUID, limit: int = LIMIT, cursor: str | None = None,
                             conn: Conn = Connection, principal: Principal = Depends(authenticated)) -> InstancePage:
        await service.pattern_for(conn, ctx, principal, pattern_id, "recurring.read")
        return InstancePage(**await service.list_instances(conn, pattern_id, limit=limit, cursor=cursor))
