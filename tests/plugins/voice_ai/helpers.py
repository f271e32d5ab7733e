"""Shared pieces of the voice_ai tests: the app, signed telephony webhooks, rows and events."""
from __future__ import annotations

import sqlalchemy as sa

from myhibachi.core.events import deliver_due
from myhibachi.core.models import offline_outbox, outbox_events
from myhibachi.plugins.voice_ai import VoiceAiPlugin

FLAG = "FEATURE_FLAG_VOICE_AI"
INCOMING = "/v1/ai/voice/incoming"
IVR = "/v1/ai/voice/ivr"


def voice_app(make_app, *, plugin_settings=None, speech=None, **overrides):
    """The app with voice_ai on; with ``speech``, that engine (loaded once) is its whisper adapter."""
    if speech is not None:
        overrides["speech_adapter"] = "whisper"
    app = make_app([VoiceAiPlugin(**(plugin_settings or {}))], flags={FLAG: True}, **overrides)
    if speech is not None:
        app.state.ctx.ports.factories["speech"]["whisper"] = lambda ctx: speech
    return app


def transcribe_path(call_id) -> str:
    return f"/v1/ai/voice/calls/{call_id}/transcribe"


def wav(audio: bytes) -> dict:
    return {"content": audio, "headers": {"Content-Type": "audio/wav"}}


async def post_signed(c, ctx, path: str, params: dict[str, str]):
    """What Twilio posts: the form, signed with the account's token over the URL and params."""
    signature = ctx.ports.telephony.sign_webhook(f"http://test{path}", params)
    return await c.post(path, data=params, headers={"X-Twilio-Signature": signature})


def call_form(sid: str = "CA0001", **extra: str) -> dict[str, str]:
    return {"CallSid": sid, "From": "+12025550123", "To": "+15550100000", "Direction": "inbound",
            "CallStatus": "ringing", **extra}


async def rows(db, table, *where, order=None):
    async with db.read() as conn:
        found = await conn.fetch_all(sa.select(table).where(*where).order_by(
            order if order is not None else table.c.created_at))
    return [dict(r) for r in found]


async def events(db, name: str):
    return [e["payload"] for e in await rows(db, outbox_events, outbox_events.c.name == name)]


async def outbox(db, port: str):
    return await rows(db, offline_outbox, offline_outbox.c.port == port)


async def deliver(ctx) -> None:
    """Run the event handlers of what was published (the hub's webhook.* events among them)."""
    while await deliver_due(ctx):
        pass
