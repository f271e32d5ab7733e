"""The feedback API, thin over the service."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Query

from myhibachi.core import (CURSOR, LIMIT, Conn, Connection, Principal, authenticated, error_responses, idempotency,
                            invalid, require)
from myhibachi.plugins.feedback import service
from myhibachi.plugins.feedback.schemas import Feedback, FeedbackIn, FeedbackPage, Sentiment, Summary

TIME_ZONE = Query(None, max_length=64, description="IANA zone the months are in (the business's by default).")


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


def add_routes(router: APIRouter, ctx) -> None:
    base = "/customers/{customer_id}/feedback"

    def zone(name: str | None) -> str:
        name = name or ctx.settings.default_time_zone
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise invalid("query.time_zone", f"unknown time zone {name!r}") from None
        return name

    def filters(sentiment: Sentiment | None = None,
                min_rating: int | None = Query(None, ge=1, le=5), max_rating: int | None = Query(None, ge=1, le=5),
                booking_id: uuid.UUID | None = None,
                submitted_from: datetime | None = Query(None, description="At or after (UTC if no offset)."),
                submitted_to: datetime | None = Query(None, description="Before (UTC if no offset).")) -> dict:
        return {"sentiment": sentiment, "min_rating": min_rating, "max_rating": max_rating, "booking_id": booking_id,
                "submitted_from": _aware(submitted_from), "submitted_to": _aware(submitted_to)}

    def page(rows, next_cursor) -> FeedbackPage:
        return FeedbackPage(items=[Feedback(**r) for r in rows], next_cursor=next_cursor)

    @router.post(base, response_model=Feedback, status_code=201, responses=error_responses(401, 403, 404, 409, 422),
                 summary="Leave feedback on a completed booking (one per booking)")
    @idempotency.idempotent(required=False)
    async def submit(customer_id: uuid.UUID, body: FeedbackIn, conn: Conn = Connection,
                     principal: Principal = Depends(authenticated)) -> Feedback:
        """The customer's own completed booking (staff with `feedback.write` record it on their
        behalf): scored for sentiment, the words sealed, `feedback.submitted` published."""
        await service.customer_for(conn, customer_id, principal, "feedback.write")
        return Feedback(**await service.submit(conn, ctx, customer_id, body.booking_id, body.rating, body.text,
                                               principal))

    @router.get(base, response_model=FeedbackPage, responses=error_responses(401, 403, 404, 422),
                summary="A customer's feedback, newest first, filtered")
    async def history(customer_id: uuid.UUID, where: dict = Depends(filters), cursor: str | None = CURSOR,
                      limit: int = LIMIT, conn: Conn = Connection,
                      principal: Principal = Depends(authenticated)) -> FeedbackPage:
        await service.customer_for(conn, customer_id, principal, "feedback.read")
        return page(*await service.page(conn, ctx, customer_id=customer_id, limit=limit, cursor=cursor, **where))

    @router.get(f"{base}/summary", response_model=Summary, responses=error_responses(401, 403, 404, 422),
                summary="A customer's feedback summed up: by sentiment, average rating, trend by month")
    async def summary(customer_id: uuid.UUID, time_zone: str | None = TIME_ZONE, conn: Conn = Connection,
                      principal: Principal = Depends(authenticated)) -> Summary:
        await service.customer_for(conn, customer_id, principal, "feedback.read")
        return Summary(customer_id=customer_id, **await service.summary(conn, zone(time_zone), customer_id=customer_id))

    @router.get("/admin/feedback", response_model=FeedbackPage, responses=error_responses(401, 403, 422),
                summary="Every customer's feedback, newest first, filtered")
    async def all_(customer_id: uuid.UUID | None = None, where: dict = Depends(filters), cursor: str | None = CURSOR,
                   limit: int = LIMIT, conn: Conn = Connection,
                   principal: Principal = Depends(require("feedback.read"))) -> FeedbackPage:
        return page(*await service.page(conn, ctx, customer_id=customer_id, limit=limit, cursor=cursor, **where))

    @router.get("/admin/feedback/summary", response_model=Summary, responses=error_responses(401, 403, 422),
                summary="Every customer's feedback summed up: by sentiment, average rating, trend by month")
    async def all_summary(time_zone: str | None = TIME_ZONE, conn: Conn = Connection,
                          principal: Principal = Depends(require("feedback.read"))) -> Summary:
        return Summary(customer_id=None, **await service.summary(conn, zone(time_zone)))
