"""The customer export API."""
from __future__ import annotations

import uuid
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from myhibachi.core import (Conn, Connection, Principal, Problem, audit, authenticated, error_responses,
                            idempotency, require)
from myhibachi.plugins.customer_export import bulk, service
from myhibachi.plugins.customer_export.schemas import BulkExportRequest, ExportJob, Format

MEDIA = {"json": ("application/json", "json", service.as_json), "csv": ("application/zip", "zip", service.as_zip),
         "pdf": ("application/pdf", "pdf", service.as_pdf)}
BULK_MEDIA = {"json": ("application/gzip", "jsonl.gz"), "csv": ("application/zip", "zip")}


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

    def view(request: Request, job: dict) -> ExportJob:
        url = None
        if job["status"] == "done":
            url = str(request.url_for("download_customer_export", job_id=job["id"]).include_query_params(
                token=bulk.link_token(request.app.state.ctx, job)))
        return ExportJob(**{k: job[k] for k in ExportJob.model_fields if k in job}, download_url=url,
                         progress=round(job["done"] / job["total"], 4) if job["total"] else 1.0)

    @router.post("/admin/customers/export", status_code=202, response_model=ExportJob,
                 responses=error_responses(401, 403, 422), summary="Export customers in bulk, as a background job")
    @idempotency.idempotent(required=False)
    async def start(body: BulkExportRequest, request: Request, conn: Conn = Connection,
                    principal: Principal = Depends(require("customers.export"))) -> ExportJob:
        job = await bulk.start(conn, request.app.state.ctx, principal, body.format, body.customer_ids, body.created_since)
        return view(request, job)

    @router.get("/admin/customers/export/{job_id}", response_model=ExportJob,
                responses=error_responses(401, 403, 404), summary="A bulk export's progress and download link")
    async def status(job_id: uuid.UUID, request: Request, conn: Conn = Connection,
                     principal: Principal = Depends(require("customers.export"))) -> ExportJob:
        return view(request, await bulk.get(conn, job_id))

    # outside /v1/admin: the signed link is the credential, a browser or script follows it signed out
    @router.get("/customer-exports/{job_id}/download", name="download_customer_export",
                response_class=StreamingResponse, responses=error_responses(403, 404, 409, 410),
                summary="Download a bulk export (the signed link is the credential)")
    async def download(job_id: uuid.UUID, request: Request, token: str = Query(...),
                       conn: Conn = Connection) -> StreamingResponse:
        ctx = request.app.state.ctx
        if bulk.job_of_token(ctx, token) != job_id:
            raise Problem(403, "Forbidden", "this download link is for another export", kind="forbidden")
        job = await bulk.get(conn, job_id)
        if job["status"] == "expired":
            raise Problem(410, "Gone", "this export has expired", kind="expired")
        if job["status"] != "done":
            raise Problem(409, "Conflict", f"the export is {job['status']}", kind="conflict")
        async with ctx.db.transaction() as tx:  # a GET's connection reads only
            await audit.record(tx, ctx, action="customers.bulk_export_downloaded", resource_type="customer_export",
                               resource_id=job_id, changes={"ip": {"old": None, "new": request.client.host
                                                                   if request.client else None}})
        media, suffix = BULK_MEDIA[job["format"]]
        return StreamingResponse(bulk.body(ctx, job), media_type=media, headers={
            "Content-Disposition": f'attachment; filename="customers-{job_id}.{suffix}"', "Cache-Control": "no-store"})
