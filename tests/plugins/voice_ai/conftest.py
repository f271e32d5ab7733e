"""The offline speech engine, loaded once for the session, and the clips espeak-ng speaks."""
from __future__ import annotations

import hashlib

import pytest

from myhibachi.core.ports.local_ai import WhisperSpeechToText
from tests.plugins.voice_ai.speech import SENTENCES, speak


@pytest.fixture(scope="session")
def whisper() -> WhisperSpeechToText:
    """Whisper tiny.en, loaded once; a clip (with its prompt) is decoded once per session: the
    engine is deterministic, so a test posting a clip another test had transcribed hears the
    same words without paying for them again (a clip the engine refuses is refused each time)."""
    speech = WhisperSpeechToText()
    speech._load()
    heard: dict[tuple[bytes, str | None], str] = {}
    decode = speech._transcribe

    def once(audio: bytes, prompt: str | None = None) -> str:
        key = (hashlib.sha256(audio).digest(), prompt)
        if key not in heard:
            heard[key] = decode(audio, prompt)
        return heard[key]

    speech._transcribe = once
    return speech


@pytest.fixture(scope="session")
def clips() -> dict[str, bytes]:
    return {name: speak(text) for name, text in SENTENCES.items()}
