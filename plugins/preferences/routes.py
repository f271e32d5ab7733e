"""The preferences API, thin over the service."""
from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Request

from myhibachi.core import Conn, Connection, Principal, authenticated, error_responses
from myhibachi.plugins.preferences import service
from myhibachi.plugins.preferences.schemas import PreferencesUpdate, PreferencesView


def add_routes(router: APIRouter, ctx) -> None:
    base = "/customers/{customer_id}/preferences"

    @router.get(base, response_model=PreferencesView, responses=error_responses(401, 403, 404, 422),
                summary="A customer's communication preferences")
    async def get(customer_id: uuid.UUID, conn: Conn = Connection,
                  principal: Principal = Depends(authenticated)) -> PreferencesView:
        await service.customer_for(conn, customer_id, principal, "preferences.read")
        return PreferencesView(**await service.current(conn, customer_id))

    @router.put(base, response_model=PreferencesView, responses=error_responses(401, 403, 404, 422),
                summary="Change a customer's communication preferences (recorded as proof of consent)")
    async def put(customer_id: uuid.UUID, body: PreferencesUpdate, request: Request, conn: Conn = Connection,
                  principal: Principal = Depends(authenticated)) -> PreferencesView:
        await service.customer_for(conn, customer_id, principal, "preferences.write")
        wanted = body.model_dump(exclude_unset=True, exclude={"source"})
        return PreferencesView(**await service.update(conn, request.app.state.ctx, customer_id, wanted,
                                                      source=body.source, principal=principal))
