"""Chat, embeddings and transcription on OpenAI or any OpenAI-compatible server (the
official ``openai`` SDK, async client)."""
from __future__ import annotations

import openai

from myhibachi.core.ports.base import ChatResult, PortError, Transcript


def _client(ctx) -> openai.AsyncOpenAI:
    settings = ctx.settings
    if not settings.openai_api_key:
        raise PortError("MYHIBACHI_OPENAI_API_KEY is not set", code="not_configured")
    return openai.AsyncOpenAI(api_key=settings.openai_api_key, base_url=settings.openai_api_base,
                              max_retries=2, timeout=60)


async def _call(coro):
    try:
        return await coro
    except openai.APIStatusError as exc:
        raise PortError(f"OpenAI refused the request: {exc.message}", code=exc.code, status=exc.status_code) from exc
    except openai.APIConnectionError as exc:
        raise PortError(f"OpenAI is unreachable: {exc}", code="unavailable", status=503) from exc


class OpenAILlm:
    def __init__(self, ctx) -> None:
        self.client = _client(ctx)
        self.model = ctx.settings.openai_chat_model

    async def chat(self, messages, *, max_tokens=None, temperature=None):
        kwargs = {"model": self.model, "messages": list(messages)}
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        if temperature is not None:
            kwargs["temperature"] = temperature
        response = await _call(self.client.chat.completions.create(**kwargs))
        usage = response.usage
        return ChatResult(content=response.choices[0].message.content or "", model=response.model,
                          prompt_tokens=usage.prompt_tokens if usage else 0,
                          completion_tokens=usage.completion_tokens if usage else 0)


class OpenAIEmbeddings:
    """Asks for 384 dimensions, the size of the offline and MiniLM vectors, so stored
    vectors keep one column type whichever adapter made them."""

    dimensions = 384

    def __init__(self, ctx) -> None:
        self.client = _client(ctx)
        self.model = ctx.settings.openai_embedding_model

    async def embed(self, texts):
        response = await _call(self.client.embeddings.create(model=self.model, input=list(texts),
                                                             dimensions=self.dimensions))
        return [item.embedding for item in sorted(response.data, key=lambda d: d.index)]


class OpenAISpeechToText:
    def __init__(self, ctx) -> None:
        self.client = _client(ctx)
        self.model = ctx.settings.openai_transcription_model

    async def transcribe(self, audio, *, filename="audio.wav", language=None):
        kwargs = {"model": self.model, "file": (filename, audio)}
        if language:
            kwargs["language"] = language
        result = await _call(self.client.audio.transcriptions.create(**kwargs))
        return Transcript(text=result.text, language=language)
