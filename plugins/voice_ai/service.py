"""The phone line: calls answered by the IVR state machine, utterances transcribed and scored
as they arrive (a sharp negative turn flags the call), and transfers to a person."""
from __future__ import annotations

import base64
import hashlib
import time
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from myhibachi.core import (PortError, Principal, Problem, conflict, customers, fetch_page, invalid, not_found, publish,
                            reseal, tables, vault, webhooks)
from myhibachi.plugins.voice_ai import intents, ivr
from myhibachi.plugins.voice_ai.models import voice_calls, voice_ivr_steps, voice_utterances

PROVIDER = "twilio"  # the form shape the telephony port's webhooks carry (CallSid, From, To, Digits...)
_analyzer = None


def sentiment(text: str) -> float:
    """VADER's compound score of ``text``, -1 (negative) to 1 (positive)."""
    global _analyzer
    if _analyzer is None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        _analyzer = SentimentIntensityAnalyzer()
    return round(_analyzer.polarity_scores(text)["compound"], 4)


def settings_of(ctx):
    return ctx.plugins.get("voice_ai").settings


def _aad(call_id: uuid.UUID, field: str) -> str:
    return f"voice_calls.{field}:{call_id}"


def _said_aad(utterance_id: uuid.UUID) -> str:
    return f"voice_utterances.text:{utterance_id}"


def call_view(ctx, row) -> dict[str, Any]:
    v = vault(ctx)
    return {**row, "from_number": v.decrypt(row["from_enc"], row["key_id"], _aad(row["id"], "from")),
            "to_number": v.decrypt(row["to_enc"], row["key_id"], _aad(row["id"], "to"))}


def _twiml(ctx, name: str, action: str, *, sorry: bool = False) -> str:
    phone, state = ctx.ports.telephony, ivr.MENU[name]
    if state.end == "agent":  # unless the answer connects the caller, hand_over already did
        return phone.dial(settings_of(ctx).agent_number) if answer_dials(ctx) else phone.say(state.prompt)
    text = (ivr.SORRY if sorry else "") + state.prompt
    if not state.listens:
        return phone.say(text)
    return phone.menu(text, action=action, timeout=state.timeout)


def answer_dials(ctx) -> bool:
    """Whether the webhook's answer connects the caller (TwiML's Dial), or the call is moved by call control."""
    return getattr(ctx.ports.telephony, "answer_dials", True)


def provider_of(ctx) -> str:
    """Whose call a webhook names: the telephony adapter's provider (Twilio's form unless it says)."""
    return getattr(ctx.ports.telephony, "provider", PROVIDER)


_BY_SID = sa.select(voice_calls).where(voice_calls.c.provider == sa.bindparam("provider"),
                                       voice_calls.c.provider_call_id == sa.bindparam("sid"))


async def incoming(conn, ctx, form: dict[str, str], action: str) -> str:
    """A call to our number: its row, and the menu's first state as TwiML. The provider's
    retry of the same call finds the row and hears where the caller is."""
    sid = form.get("CallSid", "").strip()
    if not sid:
        raise invalid("body.CallSid", "the call's id is missing")
    call_id, v = uuid.uuid4(), vault(ctx)
    direction = "outbound" if form.get("Direction", "").startswith("outbound") else "inbound"
    row = await conn.fetch_one(pg_insert(voice_calls).values(
        id=call_id, provider=provider_of(ctx), provider_call_id=sid[:255], direction=direction,
        key_id=v.current_id, from_enc=v.encrypt(form.get("From") or None, _aad(call_id, "from")),
        to_enc=v.encrypt(form.get("To") or None, _aad(call_id, "to")), ivr_state=ivr.START,
        phone_hash=customers.phone_hash(ctx, form.get("To" if direction == "outbound" else "From")),
    ).on_conflict_do_nothing(constraint="uq_voice_calls_provider_call").returning(voice_calls.c.id))
    if row is None:
        existing = await conn.fetch_one(_BY_SID, {"sid": sid, "provider": provider_of(ctx)})
        if form.get("CallStatus") in ENDED:  # a provider that posts every status here (RingCentral's hang-up)
            await _end(conn, ctx, form)
        return _twiml(ctx, existing["ivr_state"], action)
    await publish(conn, ctx, "voice.call.received", {"call_id": str(call_id), "provider_call_id": sid})
    return _twiml(ctx, ivr.START, action)


_STEP = sa.select(voice_ivr_steps.c.id).where(voice_ivr_steps.c.call_id == sa.bindparam("call_id"),
                                              voice_ivr_steps.c.input_id == sa.bindparam("input_id"))


async def spoken_intent(ctx, form: dict[str, str]) -> str | None:
    """What the caller's words mean when the menu knows none of them (the embeddings port),
    worked out before the step's transaction opens; None when there is nothing to guess."""
    speech = (form.get("SpeechResult") or "").strip()[:2000]
    if form.get("Digits") or not speech:
        return None
    async with ctx.db.read() as conn:
        call = await conn.fetch_one(_BY_SID, {"sid": form.get("CallSid", "").strip(), "provider": provider_of(ctx)})
    state = ivr.MENU[call["ivr_state"]] if call else None
    if state is None or not state.intents or ivr.heard(state, speech) != (None, None):
        return None
    cfg = settings_of(ctx)
    try:
        intent, _ = await intents.detect(ctx.ports.embeddings, speech, min_score=cfg.intent_min_score,
                                         margin=cfg.intent_margin)
    except PortError:  # no guess: the words count as not understood, the caller hears the menu again
        return None
    return intent


async def ivr_input(conn, ctx, form: dict[str, str], action: str, intent: str | None = None) -> str:
    """The caller pressed a key, spoke, or stayed silent: one step of the state machine
    (``intent``: what the words meant, from ``spoken_intent``)."""
    sid = form.get("CallSid", "").strip()
    if not sid:
        raise invalid("body.CallSid", "the call's id is missing")
    call = await conn.fetch_one(_BY_SID.with_for_update(), {"sid": sid, "provider": provider_of(ctx)})
    if call is None:
        raise not_found("Call", f"no call {sid!r} reached the menu")
    input_id = form.get("InputId") or None
    if getattr(ctx.ports.telephony, "input_ids", False) and not input_id:
        raise invalid("body.uuid", "the provider names each input")
    replayed = input_id and await conn.fetch_one(_STEP, {"call_id": call["id"], "input_id": input_id})
    if replayed or ivr.MENU[call["ivr_state"]].end:  # a replay, or the menu is over: say where the caller is
        return _twiml(ctx, call["ivr_state"], action)
    speech, digits = (form.get("SpeechResult") or "")[:2000], form.get("Digits")
    step = ivr.advance(call["ivr_state"], call["ivr_failures"], digits=digits, speech=speech, intent=intent)
    target = ivr.MENU[step.state]
    if target.end == "agent" and not answer_dials(ctx):
        await hand_over(ctx, sid, settings_of(ctx).agent_number)
    await conn.run(sa.insert(voice_ivr_steps).values(
        call_id=call["id"], state=call["ivr_state"], input=step.input, value=step.value, outcome=step.outcome,
        next_state=step.state, input_id=input_id))
    if step.input == "speech":
        await record_utterance(conn, ctx, call, speech.strip(), source="ivr")
    changes: dict[str, Any] = {"ivr_state": step.state, "ivr_failures": step.failures}
    if step.state in ivr.INTENTS:
        changes["intent"] = ivr.INTENTS[step.state]
    if target.end == "routed":
        changes["status"] = "routed"
    if target.end == "agent":
        changes.update(status="transferred", transferred_to=settings_of(ctx).agent_number, transferred_by="ivr",
                       transferred_at=sa.func.now())
    await conn.run(sa.update(voice_calls).where(voice_calls.c.id == call["id"]).values(
        **changes, updated_at=sa.func.now()))
    if target.end:
        await publish(conn, ctx, "voice.ivr.routed", {"call_id": str(call["id"]), "intent": changes["intent"],
                                                      "escalated": step.outcome == "escalated"})
    if target.end == "agent":
        await publish(conn, ctx, "voice.call.transferred", {"call_id": str(call["id"]), "to": changes["transferred_to"],
                                                            "by": "ivr"})
    return _twiml(ctx, step.state, action, sorry=step.outcome == "replayed")


# --- utterances ----------------------------------------------------------------------------

_CALL = sa.select(voice_calls).where(voice_calls.c.id == sa.bindparam("id"))
_SAID = sa.select(sa.func.count().label("count"), sa.func.avg(voice_utterances.c.sentiment).label("mean")).where(
    voice_utterances.c.call_id == sa.bindparam("call_id"))
_BY_AUDIO = sa.select(voice_utterances).where(voice_utterances.c.call_id == sa.bindparam("call_id"),
                                              voice_utterances.c.audio_sha256 == sa.bindparam("sha"))


async def get_call(conn, ctx, call_id: uuid.UUID, *, for_update: bool = False) -> dict[str, Any]:
    row = await conn.fetch_one(_CALL.with_for_update() if for_update else _CALL, {"id": call_id})
    if row is None:
        raise not_found("Call")
    return row


class Transcripts:
    """The words callers said, for other plugins (the ``CallTranscripts`` service)."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx

    async def utterance_text(self, conn, utterance_id):
        row = await conn.fetch_one(sa.select(voice_utterances).where(voice_utterances.c.id == utterance_id))
        return None if row is None else utterance_view(self.ctx, row)["text"]


def utterance_view(ctx, row) -> dict[str, Any]:
    text = vault(ctx).decrypt(row["text_enc"], row["key_id"], _said_aad(row["id"]))
    return {**row, "text": text}


async def record_utterance(conn, ctx, call, text: str, *, source: str, sha: str | None = None,
                           model: str | None = None, elapsed_ms: int | None = None) -> dict[str, Any]:
    """Store what was said with its sentiment; a sharp negative turn (at or below ``flag_below``
    and ``flag_drop`` under the call's mean so far) flags the call for a person."""
    cfg, v = settings_of(ctx), vault(ctx)
    said = await conn.fetch_one(_SAID, {"call_id": call["id"]})
    count, mean = said["count"], said["mean"]
    score, uid = sentiment(text), uuid.uuid4()
    row = await conn.fetch_one(sa.insert(voice_utterances).values(
        id=uid, call_id=call["id"], seq=count + 1, source=source, key_id=v.current_id,
        text_enc=v.encrypt(text, _said_aad(uid)), sentiment=score, audio_sha256=sha, model=model,
        elapsed_ms=elapsed_ms).returning(*voice_utterances.c))
    changes: dict[str, Any] = {"sentiment_score": score}
    before = float(mean or 0.0)
    flagged = call["flagged_at"] is None and score <= cfg.flag_below and before - score >= cfg.flag_drop
    if flagged:
        changes.update(flagged_at=sa.func.now(), flagged_reason=f"sentiment fell from {before:+.2f} to {score:+.2f}")
    await conn.run(sa.update(voice_calls).where(voice_calls.c.id == call["id"]).values(
        **changes, updated_at=sa.func.now()))
    await publish(conn, ctx, "voice.utterance.transcribed", {
        "call_id": str(call["id"]), "utterance_id": str(uid), "seq": count + 1, "sentiment": score,
        "phone_hash": call["phone_hash"] and call["phone_hash"].hex()})
    if flagged:
        await publish(conn, ctx, "voice.call.flagged", {"call_id": str(call["id"]), "utterance_id": str(uid),
                                                        "sentiment": score, "reason": changes["flagged_reason"]})
    return row


async def transcribe_clip(ctx, call_id: uuid.UUID, audio: bytes, filename: str) -> dict[str, Any]:
    """Transcribe a clip of the call through the speech port, before any transaction opens
    (a clip already stored is not transcribed again)."""
    sha = hashlib.sha256(audio).hexdigest()
    async with ctx.db.read() as conn:
        await get_call(conn, ctx, call_id)
        if await conn.fetch_one(_BY_AUDIO, {"call_id": call_id, "sha": sha}):
            return {"sha": sha, "text": None}
    started = time.perf_counter()
    text = await _hear(ctx, audio, filename)
    if not text:
        raise invalid("body", "no speech was heard in the audio")
    return {"sha": sha, "text": text, "model": getattr(ctx.ports.speech, "model", None),
            "elapsed_ms": round((time.perf_counter() - started) * 1000)}


async def _hear(ctx, audio: bytes, filename: str) -> str:
    """The words of ``audio`` (speech port, with the line's prompt when the engine takes one)."""
    speech = ctx.ports.speech
    try:
        hints = {"prompt": settings_of(ctx).speech_prompt} if getattr(speech, "prompts", False) else {}
        transcript = await speech.transcribe(audio, filename=filename, language="en", **hints)
    except PortError as exc:
        raise Problem(exc.status if exc.status in (422, 503) else 502, "Speech engine failed", str(exc),
                      kind="speech-failed", code=exc.code) from exc
    return transcript.text.strip()


async def spoken_words(ctx, form: dict[str, str]) -> dict[str, str]:
    """The IVR input with its recording (``SpeechAudio``, base64) heard as ``SpeechResult``,
    before the step's transaction opens; a replayed input is not heard again, nothing heard is silence."""
    recording = form.get("SpeechAudio")
    if not recording:
        return form
    form = {k: v for k, v in form.items() if k != "SpeechAudio"}
    audio, limit = base64.b64decode(recording), settings_of(ctx).max_audio_bytes
    if len(audio) > limit:
        raise invalid("body.input.audio", f"the recording must be at most {limit} bytes")
    async with ctx.db.read() as conn:
        call = await conn.fetch_one(_BY_SID, {"sid": form.get("CallSid", ""), "provider": provider_of(ctx)})
        if call is None or await conn.fetch_one(_STEP, {"call_id": call["id"], "input_id": form.get("InputId")}):
            return form
    text = await _hear(ctx, audio, f"{form.get('InputId') or 'input'}.wav")
    return {**form, "SpeechResult": text} if text else form


async def add_transcription(conn, ctx, call_id: uuid.UUID, clip: dict[str, Any]) -> dict[str, Any]:
    call = await get_call(conn, ctx, call_id, for_update=True)
    row = await conn.fetch_one(_BY_AUDIO, {"call_id": call_id, "sha": clip["sha"]})
    if row is None:
        row = await record_utterance(conn, ctx, call, clip["text"], source="audio", sha=clip["sha"],
                                     model=clip["model"], elapsed_ms=clip["elapsed_ms"])
    call = await get_call(conn, ctx, call_id)
    return {**utterance_view(ctx, row), "call": call_view(ctx, call)}


async def transcript(conn, ctx, call_id: uuid.UUID, *, limit: int, cursor: str | None) -> dict[str, Any]:
    await get_call(conn, ctx, call_id)
    query = sa.select(voice_utterances).where(voice_utterances.c.call_id == call_id)
    rows, nxt = await fetch_page(conn, query, (voice_utterances.c.seq,), limit=limit, cursor=cursor,
                                 descending=False)
    return {"items": [utterance_view(ctx, r) for r in rows], "next_cursor": nxt}


# --- transfers -----------------------------------------------------------------------------


async def hand_over(ctx, sid: str, to: str) -> None:
    """Move the provider's live call to ``to`` (telephony port); a refusal is the route's problem."""
    try:
        await ctx.ports.telephony.transfer(sid, to)
    except PortError as exc:
        raise Problem(503 if exc.status is None or exc.status >= 500 else 409, "Telephony provider refused",
                      str(exc), kind="provider-refused", code=exc.code) from exc


async def transfer(conn, ctx, principal: Principal, call_id: uuid.UUID, to: str, agent: str | None) -> dict[str, Any]:
    """Hand the live call to a person's number through the telephony port; who asked and when is kept."""
    call = await get_call(conn, ctx, call_id, for_update=True)
    if call["status"] == "ended":
        raise conflict("the call has ended")
    if call["status"] == "transferred" and call["transferred_to"] == to:  # asked again: it is there already
        return call_view(ctx, call)
    await hand_over(ctx, call["provider_call_id"], to)
    by = f"{principal.kind}:{principal.id}"
    row = await conn.fetch_one(sa.update(voice_calls).where(voice_calls.c.id == call_id).values(
        status="transferred", transferred_to=to, transferred_agent=agent, transferred_by=by,
        transferred_at=sa.func.now(), updated_at=sa.func.now()).returning(*voice_calls.c))
    await publish(conn, ctx, "voice.call.transferred", {"call_id": str(call_id), "to": to, "by": by},
                  actor=principal.id)
    return call_view(ctx, row)


# --- the provider's call status callbacks ----------------------------------------------------

ENDED = {"completed", "busy", "failed", "no-answer", "canceled"}  # Twilio's final CallStatus values


async def on_call_status(conn, event, ctx) -> None:
    """A call status callback the core's webhook hub received (once per CallSid and status):
    a final status ends the call and keeps its duration."""
    if event["payload"]["type"] not in ENDED:
        return
    await _end(conn, ctx, await webhooks.data_of(conn, ctx, event))


async def _end(conn, ctx, form: dict[str, str]) -> None:
    duration = form.get("CallDuration", "")
    await conn.run(sa.update(voice_calls).where(
        voice_calls.c.provider == provider_of(ctx), voice_calls.c.provider_call_id == form.get("CallSid", ""),
        voice_calls.c.status != "ended").values(
        status="ended", duration_seconds=int(duration) if duration.isdigit() else None, updated_at=sa.func.now()))


# --- the customer's data (export, erasure) ----------------------------------------------------

_CUSTOMER_PHONE = sa.select(tables.customers.c.phone_hash).where(tables.customers.c.id == sa.bindparam("id"))
_SEALED = ("key_id", "from_enc", "to_enc", "text_enc", "phone_hash")


async def export_sections(conn, ctx, customer_id: uuid.UUID) -> dict[str, list[dict[str, Any]]]:
    """The calls with the customer's number and what was said on them, opened, for their data export."""
    digest = await conn.scalar(_CUSTOMER_PHONE, {"id": customer_id})
    found = [] if digest is None else await conn.fetch_all(
        sa.select(voice_calls).where(voice_calls.c.phone_hash == digest)
        .order_by(voice_calls.c.created_at, voice_calls.c.id))
    said = [] if not found else await conn.fetch_all(
        sa.select(voice_utterances).where(voice_utterances.c.call_id.in_([c["id"] for c in found]))
        .order_by(voice_utterances.c.created_at, voice_utterances.c.seq))
    return {"voice_ai.calls": [_plain(call_view(ctx, c)) for c in found],
            "voice_ai.utterances": [_plain(utterance_view(ctx, u)) for u in said]}


def _plain(view: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in view.items() if k not in _SEALED}


async def erase_customer(conn, customer_id: uuid.UUID) -> None:
    """An erasure: the calls with the customer's number go, their words and menu steps with them
    (cascade). Calls stored before numbers were hashed carry no hash and are not found."""
    digest = await conn.scalar(_CUSTOMER_PHONE, {"id": customer_id})
    if digest is not None:
        await conn.run(sa.delete(voice_calls).where(voice_calls.c.phone_hash == digest))


async def rotate_keys(conn, ctx, *, batch: int) -> int:
    """Every call's numbers and every utterance sealed again under the current PII key."""
    return (await reseal(conn, ctx, voice_calls, lambda row, field: _aad(row["id"], field), batch=batch)
            + await reseal(conn, ctx, voice_utterances, lambda row, field: _said_aad(row["id"]), batch=batch))
