"""The offline speech engine, loaded once for the session, and the clips espeak-ng speaks."""
from __future__ import annotations

import pytest

from myhibachi.core.ports.local_ai import WhisperSpeechToText
from tests.plugins.voice_ai.speech import SENTENCES, speak


@pytest.fixture(scope="session")
def whisper() -> WhisperSpeechToText:
    speech = WhisperSpeechToText()
    speech._load()
    return speech


@pytest.fixture(scope="session")
def clips() -> dict[str, bytes]:
    return {name: speak(text) for name, text in SENTENCES.items()}
