"""The campaigns API (staff) and the tracking links (anyone holding a signed link)."""
from __future__ import annotations

import uuid
from datetime import timedelta

from fastapi import APIRouter, Depends, Query
from fastapi.responses import RedirectResponse, Response

from myhibachi.core import Conn, Connection, Principal, error_responses, idempotency, invalid, require
from myhibachi.plugins.campaigns import service
from myhibachi.plugins.campaigns.schemas import AbTestRequest, Analytics, Campaign, ScheduleRequest

# a transparent 1x1 GIF
PIXEL = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")


def add_routes(router: APIRouter, ctx) -> None:
    base = "/communications"

    @router.post(base + "/schedule", response_model=Campaign, status_code=201,
                 responses=error_responses(401, 403, 409, 422),
                 summary="Schedule a message to a contact list at a time (or in each recipient's zone)")
    @idempotency.idempotent
    async def schedule(body: ScheduleRequest, conn: Conn = Connection,
                       principal: Principal = Depends(require("campaigns.write"))) -> Campaign:
        content = body.model_dump(include={"template_key", "subject", "text", "html"})
        return Campaign(**await service.create(conn, ctx, body, principal.id,
                                               variants=[{"name": "main", "share": 100, **content}]))

    @router.get(base + "/schedule/{campaign_id}", response_model=Campaign, responses=error_responses(401, 403, 404),
                summary="A scheduled message or campaign, with its progress")
    async def get_scheduled(campaign_id: uuid.UUID, conn: Conn = Connection,
                            _: Principal = Depends(require("campaigns.read"))) -> Campaign:
        return Campaign(**await service.get(conn, campaign_id))

    @router.post(base + "/ab-test", response_model=Campaign, status_code=201,
                 responses=error_responses(401, 403, 409, 422),
                 summary="Create an A/B test: variants sent to shares of a list, the winner to the rest")
    @idempotency.idempotent
    async def create_ab_test(body: AbTestRequest, conn: Conn = Connection,
                             principal: Principal = Depends(require("campaigns.write"))) -> Campaign:
        total = sum(v.share for v in body.variants)
        if total < 100 and not body.remainder_to_winner:
            raise invalid("variants", f"the shares add up to {total}%: make it 100%, or set remainder_to_winner")
        return Campaign(**await service.create(
            conn, ctx, body, principal.id, variants=[v.model_dump() for v in body.variants], metric=body.metric,
            decide_after=timedelta(minutes=body.decide_after_minutes), remainder_to_winner=body.remainder_to_winner))

    @router.get(base + "/ab-test/{campaign_id}", response_model=Campaign, responses=error_responses(401, 403, 404),
                summary="An A/B test, with its decision once made")
    async def get_ab_test(campaign_id: uuid.UUID, conn: Conn = Connection,
                          _: Principal = Depends(require("campaigns.read"))) -> Campaign:
        return Campaign(**await service.get(conn, campaign_id))

    @router.post(base + "/ab-test/{campaign_id}/decide", response_model=Campaign,
                 responses=error_responses(401, 403, 404, 409),
                 summary="Decide an A/B test now (it is decided by itself at decide_at)")
    async def decide_ab_test(campaign_id: uuid.UUID, conn: Conn = Connection,
                             _: Principal = Depends(require("campaigns.write"))) -> Campaign:
        return Campaign(**await service.decide(conn, ctx, campaign_id))

    @router.get(base + "/analytics", response_model=Analytics, responses=error_responses(401, 403, 404, 422),
                summary="Sent, delivered, bounced, opened, clicked and converted, per campaign and variant")
    async def analytics(campaign_id: uuid.UUID, conn: Conn = Connection,
                        _: Principal = Depends(require("campaigns.read"))) -> Analytics:
        return Analytics(**await service.analytics(conn, ctx, campaign_id))

    @router.get(base + "/o/{rid}.gif", response_class=Response, responses=error_responses(404),
                summary="The open-tracking pixel of a campaign's email")
    async def track_open(rid: str, s: str = Query(max_length=64), conn: Conn = Connection) -> Response:
        await service.opened(conn, ctx, rid, s)
        return Response(PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store"})

    @router.get(base + "/c/{rid}", response_class=RedirectResponse, status_code=302, responses=error_responses(404),
                summary="A campaign's tracked link: records the click and redirects")
    async def track_click(rid: str, u: str = Query(max_length=4000), s: str = Query(max_length=64),
                          conn: Conn = Connection) -> RedirectResponse:
        return RedirectResponse(await service.clicked(conn, ctx, rid, u, s), status_code=302)
