"""The Whisper speech-to-text adapter, on this machine, on speech synthesised by espeak-ng
(``espeak-ng -v en-us -s 140 -w booking_request.wav "Please book a chef for Saturday at six"``)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from myhibachi.core.ports import PortError

AUDIO = Path(__file__).parent / "data" / "booking_request.wav"


async def test_whisper_transcribes_synthesised_speech(make_app):
    speech = make_app(speech_adapter="whisper").state.ctx.ports.speech
    transcript = await speech.transcribe(AUDIO.read_bytes(), filename="call.wav")
    words = re.findall(r"\w+", transcript.text.lower())
    assert transcript.language == "en"
    assert {"book", "chef", "saturday"} <= set(words), transcript.text
    assert "6" in words or "six" in words
    with pytest.raises(PortError) as refused:
        await speech.transcribe(AUDIO.read_bytes(), language="fr")
    assert refused.value.code == "unsupported_language"
