"""The disputes API, thin over the service."""
from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query

from myhibachi.core import CURSOR, LIMIT, Conn, Connection, Principal, app_context, error_responses, require
from myhibachi.plugins.disputes import service
from myhibachi.plugins.disputes.schemas import Dispute, DisputePage, Evidence


def add_routes(router: APIRouter, ctx) -> None:
    base = "/admin/payments/disputes"

    @router.get(base, response_model=DisputePage, responses=error_responses(401, 403, 422),
                summary="Disputes, newest first, with their evidence deadline")
    async def list_(status: str | None = Query(None, max_length=50), cursor: str | None = CURSOR,
                    limit: int = LIMIT, conn: Conn = Connection,
                    principal: Principal = Depends(require("payments.read"))) -> DisputePage:
        rows, next_cursor = await service.list_disputes(conn, status=status, cursor=cursor, limit=limit)
        return DisputePage(items=[Dispute(**r) for r in rows], next_cursor=next_cursor)

    @router.post(base + "/{dispute_id}/respond", response_model=Dispute,
                 responses=error_responses(401, 403, 404, 409, 422, 503), summary="Answer a dispute with evidence")
    async def respond(dispute_id: uuid.UUID, body: Evidence, conn: Conn = Connection, ctx=Depends(app_context),
                      principal: Principal = Depends(require("payments.write"))) -> Dispute:
        """Submitted to the provider through the payments port; a dispute already answered or
        closed answers 409."""
        return Dispute(**await service.respond(conn, ctx, dispute_id, body))
