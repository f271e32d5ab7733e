"""The communications API and the providers' webhooks, thin over the service."""
from __future__ import annotations

import json
import time
import uuid
from urllib.parse import parse_qsl
from datetime import datetime

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from myhibachi.core.auth import Principal, current_principal, require
from myhibachi.core.db import Conn
from myhibachi.core.routing import Connection
from myhibachi.core.errors import Problem, error_responses, invalid
from myhibachi.core.idempotency import HEADER, idempotent, scope_of
from myhibachi.plugins.comms import service
from myhibachi.plugins.comms.schemas import EmailSend, Message, MessagePage, SmsSend, Status, WebhookAck

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


def _forbidden_signature() -> Problem:
    return Problem(403, "Invalid signature", "the webhook signature does not match", kind="invalid-signature")


def _signed_url(request: Request) -> str:
    """The URL Twilio signed: the public address when configured (behind a proxy), else this one."""
    base = service.settings_of(request.app.state.ctx).public_url
    if base:
        query = f"?{request.url.query}" if request.url.query else ""
        return base.rstrip("/") + request.url.path + query
    return str(request.url)


async def _twilio_form(request: Request) -> dict[str, str]:
    # Twilio posts application/x-www-form-urlencoded, one value per field.
    try:
        params = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True, strict_parsing=False))
    except UnicodeDecodeError as exc:
        raise invalid("body", "not a form") from exc
    ctx = request.app.state.ctx
    if not ctx.ports.sms.verify_webhook(_signed_url(request), params, request.headers.get("X-Twilio-Signature", "")):
        raise _forbidden_signature()
    return params


async def message_key(request: Request) -> str:
    """The service's idempotency key of a send request: the caller's scope and its header."""
    principal = await current_principal(request)
    return f"http:{scope_of(principal)}:{request.headers.get(HEADER, '')}"


def add_routes(router: APIRouter, ctx) -> None:
    sends = error_responses(401, 403, 404, 409, 422)

    @router.post("/communications/sms/send", response_model=Message, status_code=202, responses=sends,
                 summary="Queue an SMS to a number or a customer")
    @idempotent
    async def send_sms(body: SmsSend, conn: Conn = Connection, message_key: str = Depends(message_key),
                       principal: Principal = Depends(require("comms.send"))) -> Message:
        return Message(**await service.send(
            conn, ctx, channel="sms", to=body.to, customer_id=body.customer_id, body=body.body, kind=body.kind,
            idempotency_key=message_key, actor=principal.id))

    @router.post("/communications/email/send", response_model=Message, status_code=202, responses=sends,
                 summary="Queue an email to an address or a customer")
    @idempotent
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
                          limit: int = Query(50, ge=1, le=200), cursor: str | None = None, conn: Conn = Connection,
                          _: Principal = Depends(require("comms.read"))) -> MessagePage:
            for name, value in (("since", since), ("until", until)):
                if value is not None and value.tzinfo is None:
                    raise invalid(name, "needs a time zone (Z or +hh:mm)")
            page = await service.history(conn, request.app.state.ctx, channel, customer_id=customer_id,
                                         status=status, since=since, until=until, limit=limit, cursor=cursor)
            return MessagePage(items=[Message(**m) for m in page["items"]], next_cursor=page["next_cursor"])

        return history

    for channel in ("sms", "email"):
        router.add_api_route(f"/communications/{channel}/history", history_route(channel), methods=["GET"],
                             response_model=MessagePage, responses=error_responses(401, 403, 422),
                             summary=f"{'SMS' if channel == 'sms' else 'Email'} history, newest first")

    hooks = error_responses(403, 422)

    @router.post("/webhooks/twilio/status", response_model=WebhookAck, responses=hooks,
                 summary="Twilio message status callback (signed)")
    async def twilio_status(request: Request, conn: Conn = Connection) -> WebhookAck:
        params = await _twilio_form(request)
        return WebhookAck(changed=int(await service.twilio_status(conn, params)))

    @router.post("/webhooks/twilio/inbound", response_class=Response, responses=hooks,
                 summary="Inbound SMS from Twilio (signed): STOP and START keywords")
    async def twilio_inbound(request: Request, conn: Conn = Connection) -> Response:
        params = await _twilio_form(request)
        await service.twilio_inbound(conn, request.app.state.ctx, params)
        return Response(EMPTY_TWIML, media_type="application/xml")

    @router.post("/webhooks/sendgrid/events", response_model=WebhookAck, responses=hooks,
                 summary="SendGrid event webhook (signed)")
    async def sendgrid_events(request: Request, conn: Conn = Connection) -> WebhookAck:
        ctx = request.app.state.ctx
        payload = await request.body()
        signature = request.headers.get(SENDGRID_SIGNATURE, "")
        timestamp = request.headers.get(SENDGRID_TIMESTAMP, "")
        if not ctx.ports.email.verify_webhook(payload, signature, timestamp):
            raise _forbidden_signature()
        tolerance = service.settings_of(ctx).webhook_tolerance_seconds
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > tolerance:
            raise Problem(403, "Stale webhook", "the webhook's signed timestamp is too old", kind="invalid-signature")
        try:
            events = json.loads(payload)
        except ValueError as exc:
            raise invalid("body", "not JSON") from exc
        if not isinstance(events, list):
            raise invalid("body", "must be a JSON array of events")
        return WebhookAck(changed=await service.sendgrid_events(conn, ctx, events))
