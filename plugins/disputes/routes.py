"""The disputes API, thin over the service."""
from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Query, Request

from myhibachi.core import (
    CURSOR, LIMIT, Conn, Connection, Principal, app_context, error_responses, idempotency, invalid, require,
)
from myhibachi.plugins.disputes import bulk, reconcile, service
from myhibachi.plugins.disputes.schemas import (
    BulkJob, BulkRequest, Dispute, DisputePage, Evidence, Reconciliation, ReconcileRequest,
)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise invalid("time_zone", f"unknown time zone {name!r}") from None


def add_routes(router: APIRouter, ctx) -> None:
    base = "/admin/payments/disputes"
    default_tz = ctx.settings.default_time_zone

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

    @router.post("/admin/payments/reconcile", response_model=Reconciliation, status_code=202,
                 responses=error_responses(401, 403, 422), summary="Reconcile the provider's transactions with the ledger")
    @idempotency.idempotent
    async def reconcile_start(body: ReconcileRequest, request: Request, conn: Conn = Connection,
                              principal: Principal = Depends(require("payments.read"))) -> Reconciliation:
        """A worker job over the local days ``first_day``..``last_day``: every provider balance
        transaction matched to the ledger and the bookings, every mismatch reported with its ids.
        One run per ``Idempotency-Key``; read it at ``GET .../reconcile/{id}``."""
        tz = body.time_zone or default_tz
        zone = _zone(tz)
        bounds = (datetime.combine(body.first_day, time(), zone),
                  datetime.combine(body.last_day + timedelta(days=1), time(), zone))
        run = await reconcile.start(conn, idempotency.scope_of(principal), request.headers[idempotency.HEADER],
                                    body.first_day, body.last_day, tz, bounds)
        return Reconciliation.of(run)

    @router.get("/admin/payments/reconcile/{reconciliation_id}", response_model=Reconciliation,
                responses=error_responses(401, 403, 404), summary="A reconciliation, with its mismatches once done")
    async def reconcile_get(reconciliation_id: uuid.UUID, conn: Conn = Connection,
                            principal: Principal = Depends(require("payments.read"))) -> Reconciliation:
        return Reconciliation.of(await reconcile.get(conn, reconciliation_id))

    @router.post("/admin/payments/bulk", response_model=BulkJob, status_code=202,
                 responses=error_responses(401, 403, 422), summary="Refund or capture many deposits, as a job")
    @idempotency.idempotent
    async def bulk_start(body: BulkRequest, request: Request, conn: Conn = Connection,
                         principal: Principal = Depends(require("payments.write"))) -> BulkJob:
        """The worker works the items in order, each on its own: one refused is recorded with its
        reason and the rest go on; each item's own `idempotency_key` moves its money once, in this
        job or any later one. Read the per-item results at `GET .../bulk/{id}`."""
        return BulkJob(**await bulk.start(conn, idempotency.scope_of(principal), request.headers[idempotency.HEADER],
                                          body))

    @router.get("/admin/payments/bulk/{job_id}", response_model=BulkJob, responses=error_responses(401, 403, 404),
                summary="A bulk job with each item's result")
    async def bulk_get(job_id: uuid.UUID, conn: Conn = Connection,
                       principal: Principal = Depends(require("payments.read"))) -> BulkJob:
        return BulkJob(**await bulk.get(conn, job_id))
