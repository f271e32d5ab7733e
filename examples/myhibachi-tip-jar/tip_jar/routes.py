"""HTTP routes of tip_jar: thin, the logic is in service."""
import uuid

from fastapi import APIRouter, Depends

from myhibachi.core.auth import Principal, authenticated
from myhibachi.core.db import Conn
from myhibachi.core.routing import Connection
from myhibachi.core.errors import error_responses, not_found
from tip_jar import service
from tip_jar.schemas import TipIn, TipOut


def setup(router: APIRouter) -> None:
    @router.post("/tips/{booking_id}", response_model=TipOut, responses=error_responses(401, 404))
    async def give_tip(booking_id: uuid.UUID, body: TipIn, conn: Conn = Connection,
                       principal: Principal = Depends(authenticated)) -> TipOut:
        row = None
        if principal.kind == "customer":
            row = await service.give(conn, booking_id, uuid.UUID(principal.id), body.amount_cents, body.currency,
                                     body.message)
        if row is None:
            raise not_found("tip jar", f"no tip jar of yours for booking {booking_id}")
        return TipOut(**row)
