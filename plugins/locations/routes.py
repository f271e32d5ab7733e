"""The locations API, thin over the service."""
from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query

from myhibachi.core import (
    CURSOR, LIMIT, Conn, Connection, Principal, app_context, current_principal, error_responses, idempotency, require,
)
from myhibachi.plugins.locations import service
from myhibachi.plugins.locations.schemas import Location, LocationCreate, LocationPage, LocationUpdate, Status


def add_routes(router: APIRouter, ctx) -> None:
    @router.get("/locations", response_model=LocationPage, responses=error_responses(422),
                summary="List locations (the public sees active ones; locations.read sees all)")
    async def list_(status: list[Status] | None = Query(None, description="Only these statuses (staff)."),
                    limit: int = LIMIT, cursor: str | None = CURSOR, conn: Conn = Connection,
                    principal: Principal = Depends(current_principal)) -> LocationPage:
        statuses = (status or None) if principal.can("locations.read") else ["active"]
        return LocationPage(**await service.list_locations(conn, statuses=statuses, limit=limit, cursor=cursor))

    @router.get("/locations/{location_id}", response_model=Location, responses=error_responses(404),
                summary="One location (inactive ones need locations.read)")
    async def get(location_id: uuid.UUID, conn: Conn = Connection,
                  principal: Principal = Depends(current_principal)) -> Location:
        return Location(**await service.get_location(conn, location_id,
                                                     include_inactive=principal.can("locations.read")))

    @router.post("/locations", response_model=Location, status_code=201, responses=error_responses(401, 403, 422),
                 summary="Create a location")
    @idempotency.idempotent(required=False)
    async def create(body: LocationCreate, conn: Conn = Connection, ctx=Depends(app_context),
                     _: Principal = Depends(require("locations.write"))) -> Location:
        return Location(**await service.create_location(conn, ctx, body.model_dump(mode="json")))

    @router.put("/locations/{location_id}", response_model=Location, responses=error_responses(401, 403, 404, 422),
                summary="Change a location (only the fields given)")
    async def update(location_id: uuid.UUID, body: LocationUpdate, conn: Conn = Connection, ctx=Depends(app_context),
                     _: Principal = Depends(require("locations.write"))) -> Location:
        return Location(**await service.update_location(conn, ctx, location_id,
                                                        body.model_dump(mode="json", exclude_unset=True)))

    @router.delete("/locations/{location_id}", response_model=Location, responses=error_responses(401, 403, 404),
                   summary="Deactivate a location (its bookings keep it)")
    async def deactivate(location_id: uuid.UUID, conn: Conn = Connection, ctx=Depends(app_context),
                         _: Principal = Depends(require("locations.write"))) -> Location:
        return Location(**await service.deactivate_location(conn, ctx, location_id))
