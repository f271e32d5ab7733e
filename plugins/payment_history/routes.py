"""The payment history and reports API, thin over the service."""
from __future__ import annotations

import re
import uuid
from datetime import date, datetime, timedelta, timezone
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Query, Request, Response

from myhibachi.core import (
    CURSOR, LIMIT, Conn, Connection, Principal, authenticated, conflict, error_responses, idempotency, invalid, require,
)
from myhibachi.plugins.payment_history import reports, service
from myhibachi.plugins.payment_history.schemas import (Kind, LedgerEntry, LedgerPage, LocationTotals, Report,
                                                       ReportJob, ReportRequest, Totals)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


FILES = {"csv": "text/csv; charset=utf-8", "pdf": "application/pdf"}
BY_LOCATION = Query(False, description="A row per location too (the booking's, with the locations plugin).")


def add_routes(router: APIRouter, ctx) -> None:
    default_tz = ctx.settings.default_time_zone

    def zone(name: str | None, field: str = "query.time_zone") -> str:
        name = name or default_tz
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise invalid(field, f"unknown time zone {name!r}") from None
        return name

    def report(rows, by_location: bool, **fields) -> Report:
        model = LocationTotals if by_location else Totals
        return Report(by_location=by_location, rows=[model(**r) for r in rows], **fields)

    def page(rows, next_cursor) -> LedgerPage:
        return LedgerPage(items=[LedgerEntry(**r) for r in rows], next_cursor=next_cursor)

    @router.get("/payments/history", response_model=LedgerPage, responses=error_responses(401, 403, 422),
                summary="The signed-in customer's own payments, newest first")
    async def own(cursor: str | None = CURSOR, limit: int = LIMIT,
                  conn: Conn = Connection, principal: Principal = Depends(authenticated)) -> LedgerPage:
        if principal.kind != "customer":
            raise invalid("header.Authorization", "this is a customer's own history; staff use /v1/admin/payments/history")
        return page(*await service.history(conn, customer_id=uuid.UUID(principal.id), cursor=cursor, limit=limit,
                                           fees=False))

    @router.get("/admin/payments/history", response_model=LedgerPage, responses=error_responses(401, 403, 422),
                summary="Every payment, newest first, filtered")
    async def all_(customer_id: uuid.UUID | None = None, kind: Kind | None = None,
                   occurred_from: datetime | None = Query(None, description="At or after (UTC if no offset)."),
                   occurred_to: datetime | None = Query(None, description="Before (UTC if no offset)."),
                   cursor: str | None = CURSOR, limit: int = LIMIT,
                   conn: Conn = Connection, principal: Principal = Depends(require("payments.read"))) -> LedgerPage:
        return page(*await service.history(conn, customer_id=customer_id, kind=kind,
                                           occurred_from=_aware(occurred_from), occurred_to=_aware(occurred_to),
                                           cursor=cursor, limit=limit))

    @router.get("/admin/payments/reports/daily", response_model=Report, responses=error_responses(401, 403, 422),
                summary="One local day's revenue by currency")
    async def daily(day: date = Query(description="The business's local day."),
                    time_zone: str | None = Query(None, max_length=64), by_location: bool = BY_LOCATION,
                    conn: Conn = Connection, principal: Principal = Depends(require("payments.read"))) -> Report:
        tz = zone(time_zone)
        rows = await service.totals(conn, day, day + timedelta(days=1), tz, "day", by_location=by_location)
        return report(rows, by_location, time_zone=tz, first_day=day, last_day=day, group_by="day")

    @router.get("/admin/payments/reports/monthly", response_model=Report, responses=error_responses(401, 403, 422),
                summary="One local month's revenue by currency")
    async def monthly(month: str = Query(description="YYYY-MM, in the business's time zone."),
                      time_zone: str | None = Query(None, max_length=64), by_location: bool = BY_LOCATION,
                      conn: Conn = Connection, principal: Principal = Depends(require("payments.read"))) -> Report:
        if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
            raise invalid("query.month", "expected YYYY-MM")
        tz = zone(time_zone)
        first, after = service.month_range(month)
        rows = await service.totals(conn, first, after, tz, "month", by_location=by_location)
        return report(rows, by_location, time_zone=tz, first_day=first, last_day=after - timedelta(days=1),
                      group_by="month")

    def job_view(request: Request, job: dict) -> ReportJob:
        done = job["status"] == "done"
        model = LocationTotals if job["by_location"] else Totals
        links = {f"{fmt}_url": str(request.url_for("download_payment_report", report_id=job["id"])
                                   .include_query_params(format=fmt)) if done else None for fmt in FILES}
        return ReportJob(**{k: job[k] for k in ReportJob.model_fields if k in job and k != "rows"}, **links,
                         rows=[model(**r) for r in job["rows"]] if done else None)

    @router.post("/admin/payments/reports/generate", response_model=ReportJob, status_code=202,
                 responses=error_responses(401, 403, 422), summary="A custom report, as a background job (CSV and PDF)")
    @idempotency.idempotent(required=False)
    async def generate(body: ReportRequest, request: Request, conn: Conn = Connection,
                       principal: Principal = Depends(require("payments.read"))) -> ReportJob:
        """The range grouped by day or month (and location, `by_location`) in the time zone, summed
        and rendered by the worker; follow it at `GET .../reports/{id}`, then download its files."""
        tz = zone(body.time_zone, "body.time_zone")
        job = await reports.start(conn, idempotency.scope_of(principal), request.headers.get(idempotency.HEADER),
                                  body, tz)
        return job_view(request, job)

    @router.get("/admin/payments/reports/{report_id}", response_model=ReportJob,
                responses=error_responses(401, 403, 404), summary="A custom report's status, and its rows once done")
    async def report_status(report_id: uuid.UUID, request: Request, conn: Conn = Connection,
                            principal: Principal = Depends(require("payments.read"))) -> ReportJob:
        return job_view(request, await reports.get(conn, report_id, *reports.VIEW))

    @router.get("/admin/payments/reports/{report_id}/download", name="download_payment_report",
                response_class=Response, responses=error_responses(401, 403, 404, 409, 422),
                summary="A custom report's CSV or PDF")
    async def download(report_id: uuid.UUID, format: Literal["csv", "pdf"] = Query("csv"), conn: Conn = Connection,
                       principal: Principal = Depends(require("payments.read"))) -> Response:
        job = await reports.get(conn, report_id, reports.R.c.status, reports.R.c[format])
        if job["status"] != "done":
            raise conflict(f"the report is {job['status']}")
        return Response(job[format], media_type=FILES[format], headers={
            "Content-Disposition": f'attachment; filename="payments-{report_id}.{format}"'})
