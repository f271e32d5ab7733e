"""The voice API: the telephony webhooks (signed, answered with TwiML) and the staff routes."""
from __future__ import annotations

import uuid
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from myhibachi.core import (CURSOR, LIMIT, Conn, Connection, InvalidSignature, Principal, Problem, error_responses,
                            idempotency, invalid, require, webhooks)
from myhibachi.plugins.voice_ai import service
from myhibachi.plugins.voice_ai.schemas import Call, Transcribed, TranscriptPage, Transfer

TWIML = {200: {"content": {"application/xml": {"example": "<Response><Gather>...</Gather></Response>"}},
               "description": "TwiML: what the caller hears next."}}
AUDIO = {"requestBody": {"required": True, "description": "One clip of the call (WAV, MP3, OGG...; sent as audio/* or "
                         "application/octet-stream).",
                         "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


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
        raise invalid(getattr(exc, "field", "body"), str(exc)) from exc
    return event.data


async def heard_form(request: Request, form: dict = Depends(signed_form)) -> dict[str, str]:
    """The form, a recorded answer (RingCentral's media leg posts audio) heard through the speech port."""
    return await service.spoken_words(request.app.state.ctx, form)


async def intent_of(request: Request, form: dict = Depends(heard_form)) -> str | None:
    return await service.spoken_intent(request.app.state.ctx, form)


def _answer_type(ctx) -> str:
    """TwiML, or the adapter's own form of the IVR's next step (RingCentral's JSON)."""
    return getattr(ctx.ports.telephony, "answer_type", "application/xml")


def _action(ctx, request: Request) -> str:
    """Where the caller's next input is posted: the IVR route at the address the provider used."""
    url = urlsplit(webhooks.signed_url(ctx, request))
    return urlunsplit((url.scheme, url.netloc, request.app.url_path_for("voice_ai_ivr"), "", ""))


async def clip(call_id: uuid.UUID, request: Request, _: Principal = Depends(require("voice.write"))) -> dict:
    """The posted audio, transcribed before the route's transaction opens."""
    ctx = request.app.state.ctx
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not (kind.startswith("audio/") or kind == "application/octet-stream"):
        raise invalid("header.Content-Type", "send the audio itself (audio/wav, audio/mpeg...)", status=415)
    audio, limit = await request.body(), service.settings_of(ctx).max_audio_bytes
    if not audio or len(audio) > limit:
        raise invalid("body", f"the audio must be 1 to {limit} bytes")
    return await service.transcribe_clip(ctx, call_id, audio, f"{call_id}.{kind.rpartition('/')[2] or 'wav'}")


def add_routes(router: APIRouter, ctx) -> None:
    base = "/ai/voice"

    @router.post(base + "/incoming", response_class=Response, responses={**TWIML, **error_responses(400, 422)},
                 summary="A call to our number (the telephony provider's signed voice webhook)")
    async def answer(request: Request, form: dict = Depends(signed_form), conn: Conn = Connection) -> Response:
        """Stores the call and answers with the IVR menu; a retry of the same call hears where it is.
        A subscription's validation request (RingCentral's) is answered with its token echoed."""
        if "ValidationToken" in form and len(form) == 1:
            return Response(headers={"Validation-Token": form["ValidationToken"]})
        twiml = await service.incoming(conn, ctx, form, _action(ctx, request))
        return Response(twiml, media_type=_answer_type(ctx))

    @router.post(base + "/ivr", name="voice_ai_ivr", response_class=Response,
                 responses={**TWIML, **error_responses(400, 404, 422)},
                 summary="The caller's keypad or speech input to the IVR menu (signed, posted by the provider)")
    async def navigate(request: Request, form: dict = Depends(heard_form), intent: str | None = Depends(intent_of),
                       conn: Conn = Connection) -> Response:
        """One step of the menu's state machine: a known key or word moves on (or words whose
        meaning is clear), an unknown input or silence replays the menu, the third failure hands
        the caller to a person."""
        twiml = await service.ivr_input(conn, ctx, form, _action(ctx, request), intent)
        return Response(twiml, media_type=_answer_type(ctx))

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

    @router.post(base + "/calls/{call_id}/transcribe", response_model=Transcribed, status_code=201,
                 openapi_extra=AUDIO, responses=error_responses(401, 403, 404, 415, 422, 502, 503),
                 summary="Transcribe a clip of the call (speech port) and score its sentiment")
    async def transcribe(call_id: uuid.UUID, clip: dict = Depends(clip), conn: Conn = Connection) -> Transcribed:
        """Each clip is one utterance, scored as it arrives (a sharp negative turn flags the call);
        the same clip posted again answers the utterance stored the first time."""
        return Transcribed(**await service.add_transcription(conn, ctx, call_id, clip))

    @router.get(base + "/calls/{call_id}/transcript", response_model=TranscriptPage,
                responses=error_responses(401, 403, 404, 422), summary="What was said on the call, in order")
    async def transcript(call_id: uuid.UUID, limit: int = LIMIT, cursor: str | None = CURSOR,
                         conn: Conn = Connection, _: Principal = Depends(require("voice.read"))) -> TranscriptPage:
        return TranscriptPage(**await service.transcript(conn, ctx, call_id, limit=limit, cursor=cursor))
