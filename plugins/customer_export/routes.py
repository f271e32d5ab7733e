"""The customer export API."""
from __future__ import annotations

import uuid
from fastapi import APIRouter, Depends, Query, Request, Response

from myhibachi.core import Conn, Connection, Principal, authenticated, error_responses
from myhibachi.plugins.customer_export import service
from myhibachi.plugins.customer_export.schemas import Format

MEDIA = {"json": ("application/json", "json", service.as_json), "csv": ("application/zip", "zip", service.as_zip),
         "pdf": ("application/pdf", "pdf", service.as_pdf)}


def add_routes(router: APIRouter, ctx) -> None:
    @router.get("/customers/{customer_id}/export", responses=error_responses(401, 403, 404, 422),
                response_class=Response, summary="Export a customer's data: JSON, CSV (zip) or PDF")
    async def export(customer_id: uuid.UUID, request: Request,
                     format: Format = Query("json"), conn: Conn = Connection,
                     principal: Principal = Depends(authenticated)) -> Response:
        ctx = request.app.state.ctx
        record = await service.record_of(conn, ctx, customer_id, principal)
        media, suffix, render = MEDIA[format]
        body = render(record)
        await service.audit_export(ctx, customer_id, principal, format, list(record["sections"]))
        return Response(body, media_type=media, headers={
            "Content-Disposition": f'attachment; filename="customer-{customer_id}.{suffix}"'})

    @router.delete("/customers/{customer_id}", status_code=204, responses=error_responses(401, 403, 404),
                   response_class=Response, summary="Erase a customer's personal data (GDPR)")
    async def erase(customer_id: uuid.UUID, request: Request, conn: Conn = Connection,
                    principal: Principal = Depends(authenticated)) -> Response:
        await service.erase(conn, request.app.state.ctx, customer_id, principal)
        return Response(status_code=204)
