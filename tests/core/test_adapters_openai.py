"""OpenAI adapters (chat, embeddings, transcription): the exact requests the SDK makes, on
a local stub answering in OpenAI's shapes."""
from __future__ import annotations

import json

import pytest

from myhibachi.core.ports import PortError


@pytest.fixture
def ports(make_app, httpserver):
    return make_app(llm_adapter="openai", embeddings_adapter="openai", speech_adapter="openai",
                    openai_api_key="sk-test-openai", openai_api_base=httpserver.url_for("/v1"),
                    openai_chat_model="gpt-test", openai_embedding_model="embed-test",
                    openai_transcription_model="whisper-test").state.ctx.ports


def last(httpserver):
    return httpserver.log[-1][0]


async def test_openai_chat(ports, httpserver):
    httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_json({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": "gpt-test-2026",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "We serve chicken, steak and shrimp."}}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20},
    })
    messages = [{"role": "system", "content": "You answer for My Hibachi."}, {"role": "user", "content": "Menu?"}]
    result = await ports.llm.chat(messages, max_tokens=50, temperature=0.2)
    request = last(httpserver)
    assert request.headers["Authorization"] == "Bearer sk-test-openai"
    assert json.loads(request.get_data()) == {"model": "gpt-test", "messages": messages, "max_tokens": 50,
                                              "temperature": 0.2}
    assert (result.content, result.model, result.prompt_tokens, result.completion_tokens) == \
        ("We serve chicken, steak and shrimp.", "gpt-test-2026", 12, 8)


async def test_openai_embeddings(ports, httpserver):
    httpserver.expect_request("/v1/embeddings", method="POST").respond_with_json({
        "object": "list", "model": "embed-test", "usage": {"prompt_tokens": 4, "total_tokens": 4},
        "data": [{"object": "embedding", "index": 1, "embedding": [0.0] * 383 + [1.0]},
                 {"object": "embedding", "index": 0, "embedding": [1.0] + [0.0] * 383}],
    })
    vectors = await ports.embeddings.embed(["hibachi", "refund"])
    body = json.loads(last(httpserver).get_data())
    assert last(httpserver).headers["Authorization"] == "Bearer sk-test-openai"
    assert (body["model"], body["input"], body["dimensions"]) == ("embed-test", ["hibachi", "refund"], 384)
    assert vectors[0][0] == 1.0 and vectors[1][383] == 1.0 and len(vectors[1]) == 384


async def test_openai_transcription(ports, httpserver):
    httpserver.expect_request("/v1/audio/transcriptions", method="POST").respond_with_json(
        {"text": "I would like to book a chef for Saturday."})
    audio = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(64))
    transcript = await ports.speech.transcribe(audio, filename="call.wav", language="en")
    request = last(httpserver)
    assert request.headers["Authorization"] == "Bearer sk-test-openai"
    assert request.content_type.startswith("multipart/form-data")
    assert request.form["model"] == "whisper-test" and request.form["language"] == "en"
    upload = request.files["file"]
    assert (upload.filename, upload.read()) == ("call.wav", audio)
    assert transcript.text == "I would like to book a chef for Saturday."


async def test_openai_refusal_is_a_port_error(ports, httpserver):
    httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_json(
        {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                   "code": "invalid_api_key"}}, status=401)
    with pytest.raises(PortError) as refused:
        await ports.llm.chat([{"role": "user", "content": "hi"}])
    assert (refused.value.code, refused.value.status) == ("invalid_api_key", 401)
