"""The voice API: the telephony webhooks (signed, answered with TwiML) and the staff routes."""
from __future__ import annotations

import uuid
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from myhibachi.core import (Conn, Connection, InvalidSignature, Principal, Problem, error_responses, idempotency, invalid,
                            require, webhooks)
from myhibachi.plugins.voice_ai import service
from myhibachi.plugins.voice_ai.schemas import Call, Transfer

TWIML = {200: {"content": {"application/xml": {"example": "<Response><Gather>...</Gather></Response>"}},
               "description": "TwiML: what the caller hears next."}}


async def signed_form(request: Request) -> dict[str, str]:
    """The provider's form, once the telephony port's adapter checked its signature: a
    dependency, so a forged request is refused before a connection is taken."""
    ctx = request.app.state.ctx
    try:
        [event] = await ctx.ports.telephony.verify_webhook(request.headers, await request.body(),
                                                           webhooks.signed_url(ctx, request))
    except InvalidSignature as exc:
        raise Problem(400, "Invalid signature", str(exc), kind="invalid-signature") from exc
    except ValueError as exc:
        raise invalid("body", str(exc)) from exc
    return event.data


def _action(ctx, request: Request) -> str:
    """Where the caller's next input is posted: the IVR route at the address the provider used."""
    url = urlsplit(webhooks.signed_url(ctx, request))
    return urlunsplit((url.scheme, url.netloc, request.app.url_path_for("voice_ai_ivr"), "", ""))


def add_routes(router: APIRouter, ctx) -> None:
    base = "/ai/voice"

    @router.post(base + "/incoming", response_class=Response, responses={**TWIML, **error_responses(400, 422)},
                 summary="A call to our number (the telephony provider's signed voice webhook)")
    async def answer(request: Request, form: dict = Depends(signed_form), conn: Conn = Connection) -> Response:
        """Stores the call and answers with the IVR menu; a retry of the same call hears where it is."""
        twiml = await service.incoming(conn, ctx, form, _action(ctx, request))
        return Response(twiml, media_type="application/xml")

    @router.post(base + "/ivr", name="voice_ai_ivr", response_class=Response,
                 responses={**TWIML, **error_responses(400, 404, 422)},
                 summary="The caller's keypad or speech input to the IVR menu (signed, posted by the provider)")
    async def navigate(request: Request, form: dict = Depends(signed_form), conn: Conn = Connection) -> Response:
        """One step of the menu's state machine: a known key or word moves on, an unknown input or
        silence replays the menu, the third failure hands the caller to a person."""
        twiml = await service.ivr_input(conn, ctx, form, _action(ctx, request))
        return Response(twiml, media_type="application/xml")

    @router.get(base + "/calls/{call_id}", response_model=Call, responses=error_responses(401, 403, 404),
                summary="One call: where the menu took it, its sentiment, its flag and transfer")
    async def get_call(call_id: uuid.UUID, conn: Conn = Connection,
                       _: Principal = Depends(require("voice.read"))) -> Call:
        return Call(**service.call_view(ctx, await service.get_call(conn, ctx, call_id)))

    @router.post(base + "/calls/{call_id}/transfer", response_model=Call,
                 responses=error_responses(401, 403, 404, 409, 422, 503),
                 summary="Hand the call to a person (telephony port); who asked and when is recorded")
    @idempotency.idempotent(required=False)
    async def transfer(call_id: uuid.UUID, body: Transfer, request: Request, conn: Conn = Connection,
                       principal: Principal = Depends(require("voice.write"))) -> Call:
        return Call(**await service.transfer(conn, ctx, principal, call_id, body.to, body.agent))
