"""The communications API, thin over the service (providers' callbacks arrive through the
core's webhook hub and are handled by the service's event handlers)."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request

from myhibachi.core import (
    CURSOR, LIMIT,
    Conn, Connection, Principal, current_customer, current_principal, error_responses, idempotency, invalid, require,
)
from myhibachi.plugins.comms import service
from myhibachi.plugins.comms.schemas import EmailSend, Message, MessagePage, SmsSend, Status


async def message_key(request: Request) -> str:
    """The service's idempotency key of a send request: the caller's scope and its header."""
    principal = await current_principal(request)
    return f"http:{idempotency.scope_of(principal)}:{request.headers.get(idempotency.HEADER, '')}"


def add_routes(router: APIRouter, ctx) -> None:
    sends = error_responses(401, 403, 404, 409, 422)

    @router.post("/communications/sms/send", response_model=Message, status_code=202, responses=sends,
                 summary="Queue an SMS to a number or a customer")
    @idempotency.idempotent
    async def send_sms(body: SmsSend, conn: Conn = Connection, message_key: str = Depends(message_key),
                       principal: Principal = Depends(require("comms.send"))) -> Message:
        return Message(**await service.send(
            conn, ctx, channel="sms", to=body.to, customer_id=body.customer_id, body=body.body, kind=body.kind,
            idempotency_key=message_key, actor=principal.id))

    @router.post("/communications/email/send", response_model=Message, status_code=202, responses=sends,
                 summary="Queue an email to an address or a customer")
    @idempotency.idempotent
    async def send_email(body: EmailSend, conn: Conn = Connection, message_key: str = Depends(message_key),
                         principal: Principal = Depends(require("comms.send"))) -> Message:
        return Message(**await service.send(
            conn, ctx, channel="email", to=body.to, customer_id=body.customer_id, subject=body.subject,
            text=body.text, html=body.html, kind=body.kind,
            idempotency_key=message_key, actor=principal.id))

    def history_route(channel: str):
        async def history(request: Request, customer_id: uuid.UUID | None = None, status: Status | None = None,
                          since: datetime | None = Query(None, description="Created at or after (ISO 8601)."),
                          until: datetime | None = Query(None, description="Created before (ISO 8601)."),
                          limit: int = LIMIT, cursor: str | None = CURSOR, conn: Conn = Connection,
                          _: Principal = Depends(require("comms.read"))) -> MessagePage:
            for name, value in (("since", since), ("until", until)):
                if value is not None and value.tzinfo is None:
                    raise invalid(f"query.{name}", "needs a time zone (Z or +hh:mm)")
            page = await service.history(conn, request.app.state.ctx, channel, customer_id=customer_id,
                                         status=status, since=since, until=until, limit=limit, cursor=cursor)
            return MessagePage(items=[Message(**m) for m in page["items"]], next_cursor=page["next_cursor"])

        return history

    for channel in ("sms", "email"):
        router.add_api_route(f"/communications/{channel}/history", history_route(channel), methods=["GET"],
                             response_model=MessagePage, responses=error_responses(401, 403, 422),
                             summary=f"{'SMS' if channel == 'sms' else 'Email'} history, newest first",
                             name=f"{channel}_history")

    @router.get("/customers/me/messages", response_model=MessagePage, responses=error_responses(401, 403, 422),
                summary="The signed-in customer's own messages, every channel, newest first")
    async def my_messages(request: Request, channel: Literal["sms", "email"] | None = None,
                          limit: int = LIMIT, cursor: str | None = CURSOR, conn: Conn = Connection,
                          principal: Principal = Depends(current_customer)) -> MessagePage:
        page = await service.history(conn, request.app.state.ctx, channel, customer_id=uuid.UUID(principal.id),
                                     limit=limit, cursor=cursor)
        return MessagePage(items=[Message(**m) for m in page["items"]], next_cursor=page["next_cursor"])
