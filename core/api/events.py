"""Admin routes for the event bus: the dead letter and its replay."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from myhibachi.core import events
from myhibachi.core.auth import Principal, require
from myhibachi.core.errors import error_responses, not_found
from myhibachi.core.pagination import CURSOR, LIMIT, NextCursor

PERMISSIONS = ["events.manage"]

class FailedDelivery(BaseModel):
    event_id: uuid.UUID
    name: str
    subscriber: str
    attempts: int
    last_error: str | None
    failed_at: datetime | None
    actor: str | None
    payload: dict[str, Any]


class FailedPage(BaseModel):
    items: list[FailedDelivery]
    next_cursor: NextCursor


class Replayed(BaseModel):
    event_id: uuid.UUID
    requeued: int


def router(make) -> APIRouter:
    r = make("/admin/events", tags=["events"])

    @r.get("/failed", response_model=FailedPage, responses=error_responses(401, 403))
    async def list_failed(request: Request, limit: int = LIMIT, cursor: str | None = CURSOR,
                          _: Principal = Depends(require("events.manage"))) -> FailedPage:
        """Deliveries parked after their last attempt, newest first."""
        rows, next_cursor = await events.failed(request.app.state.ctx, limit=limit, cursor=cursor)
        return FailedPage(items=[FailedDelivery(failed_at=row["done_at"], **row) for row in rows], next_cursor=next_cursor)

    @r.post("/{event_id}/replay", response_model=Replayed, responses=error_responses(401, 403, 404))
    async def replay(request: Request, event_id: uuid.UUID, subscriber: str | None = None,
                     _: Principal = Depends(require("events.manage"))) -> Replayed:
        """Queue the event's dead deliveries again (one subscriber's with ``?subscriber=``)."""
        count = await events.replay(request.app.state.ctx, event_id, subscriber)
        if not count:
            raise not_found("Dead delivery", f"event {event_id} has no dead delivery to replay")
        return Replayed(event_id=event_id, requeued=count)

    return r
