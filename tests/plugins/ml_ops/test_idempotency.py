"""``Idempotency-Key`` on the AI API's POST routes (the core's helper, as bookings and deposits
use it): a retry with the same key and body answers the first response and acts once; the
same key with another body is refused; fine-tuning (billed by the provider) requires a key."""
from __future__ import annotations

import uuid

import sqlalchemy as sa

from myhibachi.plugins.ml_ops import MlOpsPlugin
from myhibachi.plugins.ml_ops.models import batches, calls, evaluations, models, templates, turns
from tests.plugins.ml_ops.helpers import FLAGS, SCOPES, key, published, rows
from tests.plugins.ml_ops.intents import examples as labelled


async def twice(c, path: str, body: dict, other: dict, headers: dict, same_key: str):
    """The first answer, its retry with the same key and body, and the same key with ``other`` fields."""
    first = await c.post(path, json=body, headers=headers | key(same_key))
    retry = await c.post(path, json=body, headers=headers | key(same_key))
    changed = await c.post(path, json=body | other, headers=headers | key(same_key))
    assert "idempotent-replayed" not in first.headers, first.text
    assert retry.headers["idempotent-replayed"] == "true" and retry.json() == first.json()
    assert changed.status_code == 422 and changed.json()["type"].endswith("/idempotency-mismatch"), changed.text
    assert changed.json()["errors"][0]["field"] == "Idempotency-Key"
    return first


async def test_ai_posts_with_one_key_act_once(make_app, client_of, staff, drain, clean_db):
    """Broken on purpose: without ``@idempotent`` on the training, template and completion
    routes, each retry trains a second model, saves version 2 and calls the model again (red)."""
    app = make_app([MlOpsPlugin()], flags=FLAGS)
    headers = await staff(SCOPES)
    small = labelled(4, labels=("booking", "cancellation"))
    async with client_of(app) as c:
        train = await twice(c, "/v1/ai/models/train", {"name": "intents", "examples": small, "test_size": 0.5},
                            {"seed": 3}, headers, "train-1")
        assert train.status_code == 202
        saved = await twice(c, "/v1/ai/templates", {"key": "reply", "user": "Answer {text}"},
                            {"user": "Reply to {text}"}, headers, "tpl-1")
        assert saved.status_code == 201 and saved.json()["version"] == 1
        conversation = str(uuid.uuid4())
        asked = await c.post("/v1/ai/completions", json={"messages": [{"role": "user", "content": "Parking?"}],
                                                          "conversation_id": conversation, "cache": False},
                             headers=headers | key("ask-1"))
        again = await c.post("/v1/ai/completions", json={"messages": [{"role": "user", "content": "Parking?"}],
                                                          "conversation_id": conversation, "cache": False},
                             headers=headers | key("ask-1"))
        assert asked.status_code == 200 and again.json() == asked.json()
        assert again.headers["idempotent-replayed"] == "true"
        queued = await twice(c, "/v1/ai/batches", {"template": "reply", "items": [{"text": "Do you cater?"}]},
                             {"chunk_size": 5}, headers, "batch-1")
        assert queued.status_code == 202
        await drain(app)
        model_id = train.json()["id"]
        evaluated = await c.post(f"/v1/ai/models/{model_id}/evaluate", headers=headers | key("eval-1"))
        reevaluated = await c.post(f"/v1/ai/models/{model_id}/evaluate", headers=headers | key("eval-1"))
        assert evaluated.status_code == 201 and reevaluated.json() == evaluated.json()
        fresh = await c.post("/v1/ai/templates", json={"key": "reply", "user": "Answer {text}"}, headers=headers)
        assert fresh.json()["version"] == 2  # without a key a retry is a new request, as before
    assert [m["id"] for m in await rows(clean_db, sa.select(models))] == [uuid.UUID(model_id)]
    assert [p["model_id"] for p in await published(clean_db, "ai.model_trained")] == [model_id]
    assert len(await rows(clean_db, sa.select(evaluations))) == 1
    assert len(await published(clean_db, "ai.model_evaluated")) == 1
    assert sorted(t["version"] for t in await rows(clean_db, sa.select(templates))) == [1, 2]
    assert len(await published(clean_db, "ai.template_saved")) == 2
    assert len(await rows(clean_db, sa.select(batches))) == 1
    # one completion asked directly and one batch item: two model calls, the conversation's two turns
    assert len(await rows(clean_db, sa.select(calls))) == 2
    assert len(await rows(clean_db, sa.select(turns))) == 2


async def test_fine_tuning_requires_a_key_and_queues_one_job_per_key(make_app, client_of, staff, clean_db):
    """Broken on purpose: with the key optional on fine-tuning, a request without one queues a
    job (red); without ``@idempotent``, the retry queues a second job (red)."""
    app = make_app([MlOpsPlugin(models="gpt-4o-mini=openai")], flags=FLAGS, openai_api_key="sk-test-openai")
    headers = await staff(SCOPES)
    chats = [{"messages": [{"role": "user", "content": f"{10 + i} guests?"},
                           {"role": "assistant", "content": "Yes."}]} for i in range(10)]
    body = {"name": "faq", "base_model": "gpt-4o-mini", "examples": chats}
    async with client_of(app) as c:
        bare = await c.post("/v1/ai/models/fine-tune", json=body, headers=headers)
        assert bare.status_code == 422 and bare.json()["errors"][0]["field"] == "header.Idempotency-Key"
        first = await twice(c, "/v1/ai/models/fine-tune", body, {"name": "faq2"}, headers, "ft-1")
    assert first.status_code == 202
    stored = await rows(clean_db, sa.select(models.c.id, models.c.kind))
    assert stored == [{"id": uuid.UUID(first.json()["id"]), "kind": "fine_tune"}]
