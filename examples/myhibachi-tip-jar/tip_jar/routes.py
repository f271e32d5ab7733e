"""HTTP routes of tip_jar: thin, the logic is in service."""
import uuid

from fastapi import APIRouter, Depends

from myhibachi.core import Conn, Connection, Principal, authenticated, error_responses, invalid, not_found
from tip_jar import service
from tip_jar.schemas import TipIn, TipOut


def add_routes(router: APIRouter, ctx) -> None:
    settings = ctx.plugins.get("tip_jar").settings

    @router.post("/tips/{booking_id}", response_model=TipOut, responses=error_responses(401, 404, 422))
    async def give_tip(booking_id: uuid.UUID, body: TipIn, conn: Conn = Connection,
                       principal: Principal = Depends(authenticated)) -> TipOut:
        if body.amount_cents > settings.max_tip_cents:
            raise invalid("amount_cents", f"at most {settings.max_tip_cents} cents")
        row = None
        if principal.kind == "customer":
            row = await service.give(conn, booking_id, uuid.UUID(principal.id), body.amount_cents, body.currency,
                                     body.message)
        if row is None:
            raise not_found("tip jar", f"no tip jar of yours for booking {booking_id}")
        return TipOut(**row)
