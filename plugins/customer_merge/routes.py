"""The customer merge API (staff only)."""
from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query, Request

from myhibachi.core import LIMIT, Conn, Connection, Principal, audit, error_responses, require
from myhibachi.plugins.customer_merge import service
from myhibachi.plugins.customer_merge.schemas import DuplicatePage, MergePreview, MergeRequest, MergeResult


def add_routes(router: APIRouter, ctx) -> None:
    base = "/admin/customers"

    @router.get(base + "/duplicates", response_model=DuplicatePage, responses=error_responses(401, 403, 422),
                summary="Candidate duplicate customers, with a score and the reason")
    async def duplicates(request: Request, limit: int = LIMIT,
                         cursor: str | None = Query(None, max_length=80), conn: Conn = Connection,
                         principal: Principal = Depends(require("customers.merge"))) -> DuplicatePage:
        return DuplicatePage(**await service.duplicates(conn, request.app.state.ctx, limit=limit, cursor=cursor))

    @router.get(base + "/merge-preview", response_model=MergePreview, responses=error_responses(401, 403, 404, 409, 422),
                summary="What merging source into target would do: which value wins each field and why")
    async def preview(request: Request, source: uuid.UUID, target: uuid.UUID, conn: Conn = Connection,
                      principal: Principal = Depends(require("customers.merge"))) -> MergePreview:
        return MergePreview(**await service.plan(conn, request.app.state.ctx, source, target))

    @router.post(base + "/merge", response_model=MergeResult, responses=error_responses(401, 403, 404, 409, 422),
                 summary="Merge a duplicate into the customer kept, all or nothing")
    async def merge(body: MergeRequest, request: Request, conn: Conn = Connection,
                    principal: Principal = Depends(require("customers.merge"))) -> MergeResult:
        done = await service.merge(conn, request.app.state.ctx, body.source_id, body.target_id, principal)
        audit.note_change(request, "customer", body.source_id, {"merged_into": {"old": None, "new": str(body.target_id)}},
                          action="customer.merged")
        return MergeResult(**done)
