"""Voice AI (roadmap 3.1): the phone line answers with an IVR menu (a declared state machine,
keypad and speech), transcribes call audio through the speech port, scores each utterance's
sentiment as it arrives and flags a call that turns sharply negative, and hands a call to a
person through the telephony port."""
from __future__ import annotations

from pydantic import BaseModel, Field

from myhibachi.core import CallTranscripts, Plugin, hookimpl


class VoiceAiSettings(BaseModel):
    """Read from ``MYHIBACHI_VOICE_AI_*``."""

    agent_number: str = Field(default="+15550100100", pattern=r"^\+[1-9]\d{6,14}$",
                              description="Where the IVR sends a caller who asks for a person (E.164).")
    speech_prompt: str = Field(
        default="My Hibachi: hibachi party, hibachi chef, booking, guests.", max_length=500,
        description="Words calls are likely to hold, given to a speech engine that takes a prompt (Whisper's).")
    flag_below: float = Field(default=-0.5, ge=-1, le=0,
                              description="An utterance at or below this sentiment (VADER compound) may flag the call.")
    flag_drop: float = Field(default=0.6, gt=0, le=2,
                             description="...when it is this far below the call's mean so far (0 before the first).")
    intent_min_score: float = Field(default=0.35, ge=-1, le=1, description=(
        "Spoken words the menu does not know go where their nearest intent is (cosine to its examples' "
        "centroid, embeddings port) when at least this near..."))
    intent_margin: float = Field(default=0.1, ge=0, le=2, description="...and this much nearer than the next intent.")
    max_audio_bytes: int = Field(default=10_000_000, ge=1000, description="Largest audio clip accepted.")


def transcripts(ctx) -> CallTranscripts:
    from myhibachi.plugins.voice_ai.service import Transcripts

    return Transcripts(ctx)


class VoiceAiPlugin(Plugin):
    name = "voice_ai"
    version = "0.1.0"
    flag = "FEATURE_FLAG_VOICE_AI"
    description = "IVR phone menu, call transcription, live sentiment and transfer to a person."
    features = {"3.1": ["test_voice_call_handling", "test_voice_transcription", "test_voice_sentiment_realtime",
                        "test_voice_call_transfer", "test_voice_ivr_navigation"]}
    core = ">=0.1,<1"
    permissions = ("voice.read", "voice.write")
    settings = VoiceAiSettings
    services = {CallTranscripts: transcripts}

    @hookimpl
    def register_events(self):
        from myhibachi.core import Event
        from myhibachi.plugins.voice_ai import schemas

        return [Event("voice.call.received", schemas.CallReceived), Event("voice.ivr.routed", schemas.IvrRouted),
                Event("voice.utterance.transcribed", schemas.UtteranceTranscribed),
                Event("voice.call.flagged", schemas.CallFlagged),
                Event("voice.call.transferred", schemas.CallTransferred)]

    @hookimpl
    def register_event_handlers(self):
        from myhibachi.plugins.voice_ai import service

        return {"webhook.telephony": [service.on_call_status]}

    @hookimpl
    async def customer_export_sections(self, customer_id, conn, ctx):
        from myhibachi.plugins.voice_ai.service import export_sections

        return await export_sections(conn, ctx, customer_id)

    @hookimpl
    async def customer_erase(self, customer_id, conn, ctx):
        from myhibachi.plugins.voice_ai.service import erase_customer

        await erase_customer(conn, customer_id)

    @hookimpl
    async def rotate_keys(self, batch, conn, ctx):
        from myhibachi.plugins.voice_ai.service import rotate_keys

        return await rotate_keys(conn, ctx, batch=batch)


plugin = VoiceAiPlugin()
