"""What callers wrote and models answered is sealed at rest: conversation turns and
summaries, cached answers, training and fine-tuning examples, batch texts and outputs; each
ciphertext opens only in its own row and field."""
from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa

from myhibachi.plugins.ml_ops import MlOpsPlugin
from tests.plugins.comms.test_pii_at_rest import plaintext_hits
from tests.plugins.ml_ops.helpers import FLAGS, SCOPES, key
from tests.plugins.ml_ops.intents import examples as labelled
from tests.plugins.ml_ops.test_ai import model_requests
from tests.plugins.ml_ops.test_fine_tuning import job

NEEDLES = ("quokka", "marzipan", "ptarmigan", "zeppelin", "okapi")


def ask(text: str, **kw) -> dict:
    return {"messages": [{"role": "user", "content": text}], **kw}


async def test_ml_ops_texts_are_sealed_at_rest(make_app, client_of, staff, drain, clean_db, httpserver, rotate_pii):
    """A conversation long enough to be summarised, a cached answer, an intent classifier's
    and a fine-tuning's examples and a batch, all over HTTP: the API answers each text back
    (the model is sent the summary and the turns, the cache answers the same words, the batch
    its outputs, OpenAI gets the chats), and no text, json or array column of the database
    holds one planted word. Broken on purpose by leaving the language model's requests out of
    the offline outbox's sealing: red (offline_outbox.payload holds the words). After a PII key
    rotation every row of the five tables is sealed again and reads back the same over HTTP
    (cache, batch outputs, summary and turns, examples); broken by rotating none: red."""
    httpserver.expect_request("/v1/files", method="POST").respond_with_json({
        "id": "file-abc", "object": "file", "bytes": 1000, "created_at": 1700000000, "filename": "faq.jsonl",
        "purpose": "fine-tune", "status": "processed"})
    httpserver.expect_request("/v1/fine_tuning/jobs", method="POST").respond_with_json(job("validating_files"))
    app = make_app([MlOpsPlugin(models="gpt-4o-mini=openai", context_tokens=120)],
                   flags=FLAGS, openai_api_key="sk-test-openai", openai_api_base=httpserver.url_for("/v1"))
    ctx = app.state.ctx
    headers = await staff(SCOPES)
    conversation = str(uuid.uuid4())
    questions = ["My quokka party needs twelve seats on Saturday. It is for my mother.",
                 "Can the chef skip the marzipan, because my sister is allergic to it?",
                 "How much is the deposit and when do I pay it?",
                 "And can we start at seven in the evening?"]
    chats = [{"messages": [{"role": "user", "content": f"Is the ptarmigan menu good for {10 + i} guests?"},
                           {"role": "assistant", "content": f"Yes, {10 + i} guests love it."}]} for i in range(10)]
    examples = labelled(3)
    examples[0] = {**examples[0], "text": examples[0]["text"] + " zeppelin"}
    async with client_of(app) as c:
        answers = [await c.post("/v1/ai/completions", json=ask(q, conversation_id=conversation, model="offline"),
                                headers=headers) for q in questions]
        sent = (await model_requests(app))[-1]["messages"]
        first = await c.post("/v1/ai/completions", json=ask("Is the okapi grill hot?", model="offline"),
                             headers=headers)
        again = await c.post("/v1/ai/completions", json=ask("Is the okapi grill hot?", model="offline"),
                             headers=headers)
        trained = await c.post("/v1/ai/models/train", json={"name": "intents", "examples": examples, "seed": 7},
                               headers=headers)
        tuned = await c.post("/v1/ai/models/fine-tune", json={"name": "faq", "base_model": "gpt-4o-mini",
                                                             "examples": chats}, headers=headers | key())
        await c.post("/v1/ai/templates", json={"key": "reply", "user": "Reply to: {text}"}, headers=headers)
        batch = await c.post("/v1/ai/batches", json={"template": "reply", "model": "offline", "items": [
            {"ref": "a", "text": "Does the okapi van park here?"}, {"ref": "b", "text": "A quokka question"}]},
                             headers=headers)
        await drain(app)
        done = await c.get(f"/v1/ai/batches/{batch.json()['id']}", headers=headers)
        status = await c.get(f"/v1/ai/models/{trained.json()['id']}/status", headers=headers)
    assert [a.status_code for a in answers] == [200] * 4 and answers[-1].json()["summarised_turns"] >= 2
    assert sent[0]["role"] == "system" and "quokka party" in sent[0]["content"]  # the summary, opened
    assert any("marzipan" in m["content"] for m in sent[1:-1])  # an earlier turn, opened
    assert (first.json()["cached"], again.json()["cached"]) == (False, True)
    assert again.json()["content"] == first.json()["content"] and "okapi" in again.json()["content"]
    assert tuned.status_code == 202, tuned.text
    uploaded = [json.loads(line) for line in httpserver.log[0][0].get_data().decode().splitlines()
                if line.startswith("{")]
    assert [u["messages"] for u in uploaded] == [c["messages"] for c in chats]
    assert status.json()["status"] == "trained", status.text
    assert [r["output"].endswith(f"Reply to: {t}") for r, t in zip(done.json()["results"], (
        "Does the okapi van park here?", "A quokka question"))] == [True, True]

    async with ctx.db.read() as conn:
        assert await conn.scalar(sa.text("SELECT count(*) FROM ml_ops_turns")) == 8
        assert await conn.scalar(sa.text("SELECT count(*) FROM ml_ops_cache")) >= 1
        assert await plaintext_hits(conn, NEEDLES) == []

    again_app, counts = await rotate_pii(app)
    # 7 cached answers, 1 conversation summary, 8 turns, 22 examples (12 intents, 10 chats), 2 batch items
    assert counts == {"customer(s)": 0, "booking(s)": 0, "webhook event(s)": 0, "plugin row(s)": 40}
    async with client_of(again_app) as c:
        cached = await c.post("/v1/ai/completions", json=ask("Is the okapi grill hot?", model="offline"),
                              headers=headers)
        read = await c.get(f"/v1/ai/batches/{batch.json()['id']}", headers=headers)
        more = await c.post("/v1/ai/completions", json=ask("Is there parking?", conversation_id=conversation,
                                                           model="offline"), headers=headers)
        sent = (await model_requests(again_app))[-1]["messages"]
        evaluated = await c.post(f"/v1/ai/models/{trained.json()['id']}/evaluate", headers=headers)
    assert (cached.json()["cached"], cached.json()["content"]) == (True, first.json()["content"])
    assert read.json()["results"] == done.json()["results"]
    assert more.status_code == 200, more.text
    assert sent[0]["role"] == "system" and "marzipan" in sent[0]["content"]  # the summary, opened and extended
    assert any("seven in the evening" in m["content"] for m in sent[1:-1])  # an earlier turn, opened again
    assert evaluated.status_code == 201, evaluated.text
    assert evaluated.json()["examples"] == status.json()["test_examples"]


async def test_a_sealed_ml_ops_text_opens_only_in_its_own_row(make_app, client_of, staff, drain, clean_db):
    """Two turns of a conversation with their ciphertexts swapped, or a batch item's text moved
    into its output: reading them raises (no answer with the wrong words). Broken on purpose
    by sealing without the row's key in ``models.aad``: red (the turns read back swapped)."""
    from cryptography.exceptions import InvalidTag

    app = make_app([MlOpsPlugin()], flags=FLAGS)
    ctx = app.state.ctx
    headers = await staff(SCOPES)
    conversation = str(uuid.uuid4())
    async with client_of(app) as c:
        r = await c.post("/v1/ai/completions", json=ask("The first question", conversation_id=conversation),
                         headers=headers)
        assert r.status_code == 200, r.text
        await c.post("/v1/ai/templates", json={"key": "reply", "user": "Reply to: {text}"}, headers=headers)
        batch = (await c.post("/v1/ai/batches", json={"template": "reply", "items": [{"text": "Hello"}]},
                              headers=headers)).json()
        await drain(app)
        async with ctx.db.transaction() as conn:  # turn 1 (the question) and 2 (the answer) swapped
            await conn.run(sa.text(
                "UPDATE ml_ops_turns SET content_enc = other.content_enc FROM ml_ops_turns other "
                "WHERE ml_ops_turns.conversation_id = other.conversation_id "
                "AND (ml_ops_turns.seq, other.seq) IN ((1, 2), (2, 1))"))
            await conn.run(sa.text("UPDATE ml_ops_batch_items SET output_enc = text_enc"))
        with pytest.raises(InvalidTag):
            await c.post("/v1/ai/completions", json=ask("A second question", conversation_id=conversation),
                         headers=headers)
        with pytest.raises(InvalidTag):
            await c.get(f"/v1/ai/batches/{batch['id']}", headers=headers)
