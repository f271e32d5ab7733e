"""The provider webhook hub: ``POST /v1/webhooks/{provider}``.

Every provider posts to one route of the core. The provider's port adapter checks the
signature and splits the body into events (:meth:`verify_webhook`); the hub records each
event once by the provider's event id (a replay, or Twilio's retry of a callback, finds
it recorded and changes nothing), seals its body (it holds phone numbers and message
text), and publishes a ``webhook.<provider>`` event in the same transaction. The
provider gets its answer as soon as that commits; plugins act on the event from the
outbox (``register_event_handlers``), reading the body with :func:`data_of`.
"""
from __future__ import annotations

import json
import uuid
from typing import Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy.dialects.postgresql import insert as pg_insert

from myhibachi.core import events
from myhibachi.core.crypto import reseal, vault
from myhibachi.core.db import Conn
from myhibachi.core.errors import Problem, error_responses, invalid
from myhibachi.core.models import webhook_events
from myhibachi.core.ports import InvalidSignature
from myhibachi.core.routing import Connection

Provider = Literal["stripe", "twilio", "sendgrid", "plaid", "telephony"]
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
# provider -> the port whose adapter verifies it, and the body it expects back (None: a receipt)
PROVIDERS: dict[str, tuple[str, str | None]] = {
    "stripe": ("payments", None), "twilio": ("sms", EMPTY_TWIML), "sendgrid": ("email", None),
    "plaid": ("bank", None), "telephony": ("telephony", EMPTY_TWIML)}


class WebhookReceived(BaseModel):
    """What every ``webhook.*`` event carries; the body itself is read with ``data_of``."""

    webhook_id: str = Field(description="The hub's record of the event (webhook_events.id).")
    provider: str
    event_id: str = Field(description="The provider's id of the event, the dedupe key.")
    type: str = Field(description="The provider's kind of event.")


WEBHOOK_EVENTS = (
    events.Event("webhook.stripe", WebhookReceived, "A Stripe event; `type` is Stripe's (payment_intent.succeeded, "
                 "charge.refunded...), the body the event's `data`."),
    events.Event("webhook.twilio.status", WebhookReceived, "A Twilio message status callback; `type` is its "
                 "MessageStatus, the body the posted form (MessageSid, ErrorCode...)."),
    events.Event("webhook.twilio.inbound", WebhookReceived, "A message to one of our Twilio numbers; the body is "
                 "the posted form (From, Body...)."),
    events.Event("webhook.sendgrid", WebhookReceived, "One entry of a SendGrid event webhook batch; `type` is its "
                 "event (delivered, bounce, unsubscribe...)."),
    events.Event("webhook.plaid", WebhookReceived, "A Plaid webhook; `type` is webhook_type.webhook_code."),
    events.Event("webhook.telephony", WebhookReceived, "A voice call status callback; `type` is its CallStatus, "
                 "the body the posted form (CallSid...)."),
)


class WebhookReceipt(BaseModel):
    received: int = Field(description="Events in the request.")
    duplicates: int = Field(description="Of those, events already received before (changed nothing).")


def _aad(webhook_id: uuid.UUID) -> str:
    return f"webhook_events.data:{webhook_id}"


async def rotate_keys(conn, ctx, *, batch: int = 500) -> int:
    """Seal every received event under the current key again; returns how many rows changed."""
    return await reseal(conn, ctx, webhook_events, lambda row, field: _aad(row["id"]), batch=batch)


def signed_url(ctx, request: Request) -> str:
    """The URL the provider signed: the public address when configured (behind a proxy)."""
    base = ctx.settings.public_url
    if not base:
        return str(request.url)
    return base.rstrip("/") + request.url.path + (f"?{request.url.query}" if request.url.query else "")


_RECORD = (pg_insert(webhook_events)
           .values({c: sa.bindparam(c) for c in ("id", "provider", "event_id", "type", "data_enc", "key_id")})
           .on_conflict_do_nothing(constraint="uq_webhook_events_provider_event_id")
           .returning(webhook_events.c.id))


async def record(conn: Conn, ctx, provider: str, received: list) -> int:
    """Record and publish the events not seen before; returns how many were new."""
    v = vault(ctx)
    new = 0
    for item in received:
        webhook_id = uuid.uuid4()
        sealed = v.encrypt(json.dumps(item.data, separators=(",", ":")), _aad(webhook_id))
        row = await conn.fetch_one(_RECORD, {"id": webhook_id, "provider": provider, "event_id": item.id[:255],
                                             "type": item.type[:100], "data_enc": sealed, "key_id": v.current_id})
        if row is None:
            continue
        new += 1
        name = f"webhook.{provider}.{item.topic}" if item.topic else f"webhook.{provider}"
        await events.publish(conn, ctx, name, {"webhook_id": str(webhook_id), "provider": provider,
                                               "event_id": item.id, "type": item.type})
    return new


_DATA = sa.select(webhook_events.c.data_enc, webhook_events.c.key_id).where(
    webhook_events.c.id == sa.bindparam("id"))


async def data_of(conn: Conn, ctx, event: dict[str, Any]) -> dict[str, Any]:
    """The body of a ``webhook.*`` event, as the provider sent it (a handler's only way to it)."""
    webhook_id = uuid.UUID(event["payload"]["webhook_id"])
    row = await conn.fetch_one(_DATA, {"id": webhook_id})
    return json.loads(vault(ctx).decrypt(row["data_enc"], row["key_id"], _aad(webhook_id)))


async def verified(provider: Provider, request: Request) -> list:
    """The provider's events in the request, once its adapter checked the signature: a
    dependency, so a forged or malformed request is refused before a connection is taken."""
    ctx = request.app.state.ctx
    try:
        return await ctx.ports.get(PROVIDERS[provider][0]).verify_webhook(
            request.headers, await request.body(), signed_url(ctx, request))
    except InvalidSignature as exc:
        raise Problem(400, "Invalid signature", str(exc), kind="invalid-signature") from exc
    except ValueError as exc:
        raise invalid(getattr(exc, "field", "body"), str(exc)) from exc


def router(make) -> APIRouter:
    r = make(tags=["webhooks"])

    @r.post("/webhooks/{provider}", response_model=WebhookReceipt, summary="A provider's signed webhook",
            responses={**error_responses(400, 422),
                       200: {"content": {"application/xml": {"example": EMPTY_TWIML}},
                             "description": "Received (Twilio and telephony get empty TwiML)."}})
    async def receive(provider: Provider, request: Request, received: list = Depends(verified),
                      conn: Conn = Connection):
        """Verified by the provider's adapter (Stripe-Signature, X-Twilio-Signature, SendGrid's signed
        event webhook, Plaid-Verification); each provider event is recorded and published once, so
        a replay answers 200 and changes nothing."""
        new = await record(conn, request.app.state.ctx, provider, received)
        reply = PROVIDERS[provider][1]
        if reply is not None:
            return Response(reply, media_type="application/xml")
        return WebhookReceipt(received=len(received), duplicates=len(received) - new)

    return r
