"""Embeddings through the HTTP API, on the offline default model (all-MiniLM-L6-v2 int8 ONNX)."""
from __future__ import annotations

import uuid

import sqlalchemy as sa

from myhibachi.core.models import outbox_events
from myhibachi.plugins.embeddings import EmbeddingsPlugin
from myhibachi.plugins.embeddings.models import ai_embeddings
from tests.plugins.embeddings.faq import CONVERSATIONS, FAQ, PARAPHRASES

FLAGS = {"FEATURE_FLAG_AI_EMBEDDINGS": True}


def field_of(response) -> str:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return response.json()["errors"][0]["field"]


async def stored(db):
    async with db.read() as conn:
        return await conn.fetch_all(sa.select(ai_embeddings))


async def published(db, name="embedding.stored"):
    async with db.read() as conn:
        return await conn.scalars(sa.select(outbox_events.c.payload).where(outbox_events.c.name == name))


def as_events(rows):
    """The ``embedding.stored`` payloads the stored ``rows`` should have published."""
    return by_id({"embedding_id": str(r["id"]), "kind": r["kind"], "source_id": r["source_id"],
                    "model": r["model"], "dimensions": r["dimensions"]} for r in rows)


def by_id(payloads):
    return sorted(payloads, key=lambda p: p["embedding_id"])


async def test_embeddings_create(make_app, client_of, seed, database):
    """Texts are embedded by the port's model and stored with the model and dimension per row,
    the text sealed; each stored row publishes ``embedding.stored``. Broken on purpose: storing
    the text in clear (red); publishing one event for the whole batch (red)."""
    app = make_app([EmbeddingsPlugin()], flags=FLAGS)
    staff = await seed.staff("ai.write")
    async with client_of(app, headers=staff) as c:
        made = await c.post("/v1/ai/embeddings", json={"items": [
            {"text": FAQ["price"], "kind": "faq", "source_id": "price", "label": "Pricing"},
            {"text": "Do you bring the grill?"}]})
        assert made.status_code == 201, made.text
        body = made.json()
        assert (body["model"], body["dimensions"]) == ("all-MiniLM-L6-v2-onnx-int8", 384)
        first, second = body["results"]
        assert len(first["embedding"]) == 384 and abs(sum(v * v for v in first["embedding"]) - 1) < 1e-4
        assert (first["kind"], first["source_id"], second["kind"]) == ("faq", "price", "document")

        rows = await stored(database)
        assert sorted((r["id"], r["kind"], r["model"], r["dimensions"]) for r in rows) == sorted([
            (uuid.UUID(first["id"]), "faq", "all-MiniLM-L6-v2-onnx-int8", 384),
            (uuid.UUID(second["id"]), "document", "all-MiniLM-L6-v2-onnx-int8", 384)])
        assert all(FAQ["price"] not in r["text_enc"] and "grill" not in r["text_enc"] for r in rows)
        async with database.read() as conn:
            back = await conn.scalar(sa.text("SELECT embedding::float4[] FROM ai_embeddings WHERE id = :id"),
                                     {"id": uuid.UUID(first["id"])})
        assert max(abs(a - b) for a, b in zip(back, first["embedding"])) < 1e-5

        for bad, field in (({"items": []}, "body.items"), ({"items": [{"text": ""}]}, "body.items.0.text"),
                           ({"items": [{"text": "x"}] * 65}, "body.items"),
                           ({"items": [{"text": "x", "kind": "Not A Kind"}]}, "body.items.0.kind")):
            refused = await c.post("/v1/ai/embeddings", json=bad)
            assert refused.status_code == 422 and field_of(refused) == field, refused.text
        assert len(await stored(database)) == 2 and len(await published(database)) == 2
        assert by_id(await published(database)) == as_events(rows)

    async with client_of(app, headers=await seed.staff("ai.read")) as c:
        assert (await c.post("/v1/ai/embeddings", json={"items": [{"text": "x"}]})).status_code == 403
    assert len(await stored(database)) == 2 and len(await published(database)) == 2


async def test_embeddings_search(make_app, client_of, seed, database):
    """The FAQ is stored; each customer paraphrase searches it, and the right answer comes
    first for most of them (the hit rate is printed and recorded in bench/RESULTS.md).
    Broken on purpose: the hashing test double as the model (hit rate 2/12, red); search
    ignoring the kind filter (red)."""
    app = make_app([EmbeddingsPlugin()], flags=FLAGS)
    async with client_of(app, headers=await seed.staff("ai.read", "ai.write")) as c:
        made = await c.post("/v1/ai/embeddings", json={"items": [
            {"text": text, "kind": "faq", "source_id": key} for key, text in FAQ.items()]})
        assert made.status_code == 201, made.text
        await c.post("/v1/ai/embeddings", json={"items": [{"text": "Can I move my event to a different date?",
                                                           "kind": "sms", "source_id": "thread-1"}]})
        top1 = 0
        for question, expected in PARAPHRASES:
            found = await c.post("/v1/ai/embeddings/search", params={"limit": 3},
                                  json={"query": question, "kind": "faq"})
            assert found.status_code == 200, found.text
            hits = found.json()["items"]
            assert len(hits) == 3 and all(h["kind"] == "faq" for h in hits)
            assert hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]
            top1 += hits[0]["source_id"] == expected
        rate = top1 / len(PARAPHRASES)
        print(f"FAQ paraphrase top-1 hit rate: {top1}/{len(PARAPHRASES)} = {rate:.2f}")
        assert rate >= 0.75

        push = {"query": "Could we push our dinner back two weeks?"}
        best = (await c.post("/v1/ai/embeddings/search", params={"limit": 2}, json=push)).json()["items"]
        assert {h["kind"] for h in best} == {"faq", "sms"}
        assert [h["text"] for h in best] == [FAQ["reschedule"]] * 2
        ranked = [h["id"] for h in (await c.post("/v1/ai/embeddings/search", json=push)).json()["items"]]
        assert len(ranked) == len(FAQ) + 1
        page, seen = {"next_cursor": None}, []
        while True:
            params = {"limit": 4} | ({"cursor": page["next_cursor"]} if page["next_cursor"] else {})
            page = (await c.post("/v1/ai/embeddings/search", params=params, json=push)).json()
            seen += [h["id"] for h in page["items"]]
            if not page["next_cursor"]:
                break
        assert seen == ranked  # pages follow the ranking: none skipped, none twice
        for params, body, field in (({"limit": 0}, {"query": "x"}, "query.limit"),
                                    ({"cursor": "nope"}, {"query": "x"}, "query.cursor"),
                                    ({}, {"query": ""}, "body.query"), ({}, {"query": "x", "limit": 3}, "body.limit")):
            refused = await c.post("/v1/ai/embeddings/search", params=params, json=body)
            assert refused.status_code == 422 and field_of(refused) == field, refused.text
    rows = await stored(database)
    assert len(rows) == len(FAQ) + 1 and by_id(await published(database)) == as_events(rows)


async def test_embeddings_similarity(make_app, client_of, seed, database, drain, rotate_pii):
    """Inbound SMS reach the hub; their event queues each text once (sealed), the worker embeds
    the queue in one batch (no request embeds a conversation), and similar/{id} answers the
    conversations nearest in meaning. Broken on purpose: the queue without its once-per-source
    conflict rule (a replayed delivery queued twice, red); similar including the conversation
    itself (red). A PII key rotation seals the stored texts and a still queued one again: they
    read back the same (similar's texts, the queued one embedded afterwards); rotating none: red."""
    from myhibachi.core.scheduled import pollers
    from myhibachi.plugins.embeddings import service
    from myhibachi.plugins.embeddings.models import ai_embedding_queue

    app = make_app([EmbeddingsPlugin()], flags=FLAGS)
    ctx = app.state.ctx
    url = "http://test/v1/webhooks/twilio"
    texts = {"SM1": "My son has a peanut allergy, can the chef skip nuts?",
             "SM2": "Is the food ok for someone allergic to tree nuts?",
             "SM3": "We need to cancel our party on Saturday",
             "SM4": "Please call off the booking, plans changed",
             "SM5": "What time will the chef arrive?"}
    calls = []
    embed = ctx.ports.embeddings.embed

    async def counted(batch):
        calls.append(len(batch))
        return await embed(batch)

    ctx.ports.embeddings.embed = counted
    async with client_of(app) as c:
        for sid, body in [*texts.items(), ("SM1", texts["SM1"])]:
            params = {"MessageSid": sid, "From": "+12025550101", "To": "+15550009999", "Body": body}
            answer = await c.post("/v1/webhooks/twilio", data=params,
                                  headers={"X-Twilio-Signature": ctx.ports.sms.sign_webhook(url, params)})
            assert answer.status_code == 200, answer.text
    assert calls == []  # no request embedded anything
    from myhibachi.core.events import deliver_due
    while await deliver_due(ctx):
        pass
    async with database.read() as conn:
        queued = await conn.fetch_all(sa.select(ai_embedding_queue))
    assert sorted(r["source_id"] for r in queued) == sorted(texts)
    assert all("nut" not in r["text_enc"] for r in queued)
    assert await pollers(ctx)["embeddings"](ctx) == 5 and calls == [5]
    assert await service.embed_queued(ctx) == 0
    rows = await stored(database)
    assert sorted(r["source_id"] for r in rows) == sorted(texts) and {r["kind"] for r in rows} == {"sms"}
    assert {(r["model"], r["dimensions"]) for r in rows} == {("all-MiniLM-L6-v2-onnx-int8", 384)}
    assert by_id(await published(database)) == as_events(rows)
    assert len(await published(database, "webhook.twilio.inbound")) == 5  # the replay is one delivery

    async with client_of(app, headers=await seed.staff("ai.read")) as c:
        near = await c.get("/v1/ai/embeddings/similar/SM1", params={"limit": 2})
        assert near.status_code == 200, near.text
        assert [h["source_id"] for h in near.json()["items"]][0] == "SM2"
        assert "SM1" not in [h["source_id"] for h in near.json()["items"]]
        page = (await c.get("/v1/ai/embeddings/similar/SM3", params={"limit": 1})).json()
        assert [h["source_id"] for h in page["items"]] == ["SM4"] and page["items"][0]["text"] == texts["SM4"]
        ranked = [h["source_id"] for h in (await c.get("/v1/ai/embeddings/similar/SM3")).json()["items"]]
        seen = []
        while page["next_cursor"]:
            seen += [h["source_id"] for h in page["items"]]
            page = (await c.get("/v1/ai/embeddings/similar/SM3",
                                params={"limit": 1, "cursor": page["next_cursor"]})).json()
        assert seen + [h["source_id"] for h in page["items"]] == ranked and len(ranked) == 4
        bad = await c.get("/v1/ai/embeddings/similar/SM3", params={"cursor": "nope"})
        assert bad.status_code == 422 and field_of(bad) == "query.cursor"
        missing = await c.get("/v1/ai/embeddings/similar/SM404")
        assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")
        bad = await c.get("/v1/ai/embeddings/similar/SM1", params={"limit": 0})
        assert bad.status_code == 422 and field_of(bad) == "query.limit"

    late = "Could you bring a vegetarian menu for two of the guests?"
    async with client_of(app) as c:
        params = {"MessageSid": "SM6", "From": "+12025550101", "To": "+15550009999", "Body": late}
        answer = await c.post("/v1/webhooks/twilio", data=params,
                              headers={"X-Twilio-Signature": ctx.ports.sms.sign_webhook(url, params)})
        assert answer.status_code == 200, answer.text
    while await deliver_due(ctx):
        pass
    again, counts = await rotate_pii(app)  # 5 stored texts and SM6 still queued; 6 inbound SMS deliveries
    assert counts == {"customer(s)": 0, "booking(s)": 0, "webhook event(s)": 6, "plugin row(s)": 6}
    async with client_of(again, headers=await seed.staff("ai.read")) as c:
        near = (await c.get("/v1/ai/embeddings/similar/SM5")).json()["items"]
        assert sorted((h["source_id"], h["text"]) for h in near) == sorted(
            (sid, text) for sid, text in texts.items() if sid != "SM5")
        assert await pollers(again.state.ctx)["embeddings"](again.state.ctx) == 1  # the queued text, opened
        found = (await c.post("/v1/ai/embeddings/search", params={"limit": 1},
                              json={"query": "meat-free food for some guests", "kind": "sms"})).json()["items"]
        assert [(h["source_id"], h["text"]) for h in found] == [("SM6", late)]


async def test_embeddings_clustering(make_app, client_of, seed, database):
    """Conversations on three subjects are stored; a clustering groups them by subject (the
    count chosen by silhouette), labels each cluster by its top terms, stores the run and its
    clusters and publishes ``embedding.clustered``; FAQ texts are not conversations and stay out.
    Broken on purpose: labels from word counts alone, without the weight against the other
    clusters ('party', shared by all, tops every label, red); k-means on the hashing test
    double's vectors (subjects mixed, red)."""
    from myhibachi.plugins.embeddings.models import ai_clusterings, ai_clusters

    app = make_app([EmbeddingsPlugin()], flags=FLAGS)
    sources = {f"{subject}-{n}": subject for subject, texts in CONVERSATIONS.items() for n in range(len(texts))}
    async with client_of(app, headers=await seed.staff("ai.read", "ai.write")) as c:
        made = await c.post("/v1/ai/embeddings", json={"items": [
            {"text": text, "kind": "sms" if n % 2 else "feedback", "source_id": f"{subject}-{n}"}
            for subject, texts in CONVERSATIONS.items() for n, text in enumerate(texts)]
            + [{"text": text, "kind": "faq", "source_id": key} for key, text in FAQ.items()]})
        assert made.status_code == 201, made.text

        answer = await c.post("/v1/ai/embeddings/clusters", json={})
        assert answer.status_code == 201, answer.text
        run = answer.json()
        assert (run["clusters"], run["texts"], run["kinds"]) == (3, 12, ["sms", "call", "feedback"])
        assert run["silhouette"] > 0
        groups = {frozenset(sources[s] for s in cl["source_ids"]): cl for cl in run["results"]}
        assert set(groups) == {frozenset([s]) for s in CONVERSATIONS}, run["results"]
        assert all(cl["size"] == 4 and len(cl["terms"]) == 3 for cl in run["results"])
        terms = {next(iter(k)): set(cl["terms"]) for k, cl in groups.items()}
        assert "party" not in set().union(*terms.values())
        assert terms["allergy"] & {"allergy", "allergic", "nut", "nuts", "peanut"}
        assert terms["cancel"] & {"cancel", "refund", "refunded", "refunds"}
        assert terms["price"] & {"price", "cost"}

        async with database.read() as conn:
            stored_run = await conn.fetch_one(sa.select(ai_clusterings))
            stored_clusters = await conn.fetch_all(sa.select(ai_clusters).order_by(ai_clusters.c.position))
            embedded = {r["id"]: r["source_id"] for r in await conn.fetch_all(sa.select(ai_embeddings))}
        assert (str(stored_run["id"]), stored_run["model"], stored_run["clusters"]) == (
            run["id"], "all-MiniLM-L6-v2-onnx-int8", 3)
        assert [(r["label"], r["terms"], sorted(embedded[e] for e in r["embedding_ids"])) for r in stored_clusters] == [
            (cl["label"], cl["terms"], sorted(cl["source_ids"])) for cl in run["results"]]
        assert await published(database, "embedding.clustered") == [
            {"clustering_id": run["id"], "model": "all-MiniLM-L6-v2-onnx-int8", "kinds": ["sms", "call", "feedback"],
             "clusters": 3, "texts": 12}]

        again = await c.get(f"/v1/ai/embeddings/clusters/{run['id']}")
        assert again.status_code == 200, again.text
        assert [(cl["label"], sorted(cl["source_ids"])) for cl in again.json()["results"]] == [
            (cl["label"], sorted(cl["source_ids"])) for cl in run["results"]]
        two = (await c.post("/v1/ai/embeddings/clusters", json={"kinds": ["faq"], "clusters": 2})).json()
        assert (two["clusters"], two["texts"], sum(cl["size"] for cl in two["results"])) == (2, len(FAQ), len(FAQ))

        for body, field in (({"clusters": 1}, "body.clusters"), ({"kinds": []}, "body.kinds"),
                            ({"kinds": ["call"]}, "body.kinds"), ({"clusters": 20}, "body.clusters"),
                            ({"kinds": ["Not A Kind"]}, "body.kinds.0")):
            refused = await c.post("/v1/ai/embeddings/clusters", json=body)
            assert refused.status_code == 422 and field_of(refused) == field, refused.text
        missing = await c.get(f"/v1/ai/embeddings/clusters/{uuid.uuid4()}")
        assert missing.status_code == 404
        assert (await c.get("/v1/ai/embeddings/clusters/nope")).status_code == 422
    async with database.read() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(ai_clusterings)) == 2
    async with client_of(app, headers=await seed.staff("ai.read")) as c:
        assert (await c.post("/v1/ai/embeddings/clusters", json={})).status_code == 403


async def test_a_model_switch_reembeds_the_stored_texts_in_the_background(make_app, client_of, seed, database):
    """Texts stored by one model are not searched by another (no mixed spaces); the worker's
    poller embeds them again with the current model in batches, and search finds them. Broken on
    purpose: search without its model filter (the old vectors answer, red); the re-embed not
    recording the new model (the next round takes the same rows again, red)."""
    from myhibachi.core.scheduled import pollers

    old = make_app([EmbeddingsPlugin()], flags=FLAGS, embeddings_adapter="hashing")
    headers = await seed.staff("ai.read", "ai.write")
    async with client_of(old, headers=headers) as c:
        made = await c.post("/v1/ai/embeddings", json={"items": [
            {"text": text, "kind": "faq", "source_id": key} for key, text in FAQ.items()]})
        assert made.status_code == 201 and made.json()["model"] == "offline-hashing-384", made.text
    question, expected = PARAPHRASES[4]

    app = make_app([EmbeddingsPlugin()], flags=FLAGS)
    async with client_of(app, headers=headers) as c:
        before = await c.post("/v1/ai/embeddings/search", json={"query": question})
        assert before.status_code == 200 and before.json()["items"] == [], before.text
        work = pollers(app.state.ctx)["embeddings"]
        assert await work(app.state.ctx) == len(FAQ)
        assert await work(app.state.ctx) == 0
        rows = await stored(database)
        assert {(r["model"], r["dimensions"]) for r in rows} == {("all-MiniLM-L6-v2-onnx-int8", 384)}
        assert len(rows) == len(FAQ)
        after = (await c.post("/v1/ai/embeddings/search", params={"limit": 1}, json={"query": question})).json()
        assert [h["source_id"] for h in after["items"]] == [expected]


async def test_what_callers_said_is_searched_with_the_conversations(make_app, client_of, seed, database):
    """With voice_ai installed, a caller's words (the IVR's speech, stored sealed by voice_ai)
    reach the embeddings through voice_ai's CallTranscripts service: queued sealed once per
    utterance, embedded by the worker as a ``call``, found by a paraphrase. Without voice_ai
    the plugin loads and subscribes to nothing of it. Broken on purpose: without the handler of
    ``voice.utterance.transcribed`` nothing is queued (red)."""
    from myhibachi.core.events import deliver_due
    from myhibachi.core.scheduled import pollers
    from myhibachi.plugins.embeddings.models import ai_embedding_queue
    from myhibachi.plugins.voice_ai import VoiceAiPlugin
    from myhibachi.plugins.voice_ai.models import voice_utterances
    from tests.plugins.voice_ai.helpers import FLAG as VOICE, INCOMING, IVR, call_form, post_signed

    alone = make_app([EmbeddingsPlugin()], flags=FLAGS).state.ctx
    assert "voice.utterance.transcribed" not in alone.event_handlers
    app = make_app([EmbeddingsPlugin(), VoiceAiPlugin()], flags={**FLAGS, VOICE: True})
    ctx = app.state.ctx
    said = "I would like to book a hibachi chef for twelve guests next Saturday"
    async with client_of(app) as c:
        assert (await post_signed(c, ctx, INCOMING, call_form("CA77"))).status_code == 200
        assert (await post_signed(c, ctx, IVR, call_form("CA77", Digits="1"))).status_code == 200
        answer = await post_signed(c, ctx, IVR, call_form("CA77", SpeechResult=said))
        assert answer.status_code == 200, answer.text
    while await deliver_due(ctx):
        pass
    async with database.read() as conn:
        [utterance] = await conn.fetch_all(sa.select(voice_utterances))
        queued = await conn.fetch_all(sa.select(ai_embedding_queue))
    assert [(q["kind"], q["source_id"]) for q in queued] == [("call", str(utterance["id"]))]
    assert "twelve" not in queued[0]["text_enc"]  # sealed in the queue as in voice_ai's table
    assert await pollers(ctx)["embeddings"](ctx) == 1
    [row] = await stored(database)
    assert (row["kind"], row["source_id"]) == ("call", str(utterance["id"]))
    assert by_id(await published(database)) == as_events([row])
    async with client_of(app, headers=await seed.staff("ai.read")) as c:
        found = await c.post("/v1/ai/embeddings/search", json={"query": "a cook for a dozen people on the weekend",
                                                                "kind": "call"})
    assert found.status_code == 200, found.text
    assert [(h["source_id"], h["text"]) for h in found.json()["items"]] == [(str(utterance["id"]), said)]


async def test_what_customers_said_in_feedback_is_searched_with_the_conversations(make_app, client_of, seed,
                                                                                   database):
    """With the feedback plugin installed, a customer's feedback (submitted over HTTP, sealed by
    feedback) reaches the embeddings through its CustomerFeedback service on
    ``feedback.submitted``: queued sealed, embedded by the worker as ``feedback``, found by a
    paraphrase. Without feedback the plugin subscribes to nothing of it. Broken on purpose:
    without the handler of ``feedback.submitted`` nothing is queued (red)."""
    from datetime import timedelta

    from myhibachi.core.db import utcnow
    from myhibachi.core.events import deliver_due
    from myhibachi.core.scheduled import pollers
    from myhibachi.plugins.embeddings.models import ai_embedding_queue
    from myhibachi.plugins.feedback import FeedbackPlugin

    assert "feedback.submitted" not in make_app([EmbeddingsPlugin()], flags=FLAGS).state.ctx.event_handlers
    app = make_app([EmbeddingsPlugin(), FeedbackPlugin()],
                   flags={**FLAGS, "FEATURE_FLAG_CUSTOMER_FEEDBACK_HISTORY": True})
    ctx = app.state.ctx
    ana = await seed.customer()
    booking = await seed.booking(ana, utcnow() - timedelta(days=1))
    said = "The shrimp were undercooked and my daughter, who has a nut allergy, was served a peanut sauce."
    async with client_of(app, headers=await seed.staff("bookings.write")) as c:
        assert (await c.post(f"/v1/bookings/{booking}/complete")).status_code == 200
    async with client_of(app, headers=seed.token(ana)) as c:
        made = await c.post(f"/v1/customers/{ana}/feedback", json={"booking_id": str(booking), "rating": 1,
                                                                   "text": said})
        assert made.status_code == 201, made.text
    while await deliver_due(ctx):
        pass
    feedback_id = made.json()["id"]
    async with database.read() as conn:
        queued = await conn.fetch_all(sa.select(ai_embedding_queue))
    assert [(q["kind"], q["source_id"]) for q in queued] == [("feedback", feedback_id)]
    assert "peanut" not in queued[0]["text_enc"]
    assert await pollers(ctx)["embeddings"](ctx) == 1
    [row] = await stored(database)
    assert (row["kind"], row["source_id"]) == ("feedback", feedback_id)
    async with client_of(app, headers=await seed.staff("ai.read")) as c:
        found = await c.post("/v1/ai/embeddings/search", json={"query": "a child with food allergies got nuts",
                                                                "kind": "feedback"})
    assert found.status_code == 200, found.text
    assert [(h["source_id"], h["text"]) for h in found.json()["items"]] == [(feedback_id, said)]


async def test_an_erased_customers_words_leave_the_conversations(make_app, client_of, seed, database):
    """``DELETE /v1/customers/{id}`` takes the customer's texts out of the embeddings, stored or
    still queued: their SMS (found by their number, however it was spelt), what they said on a
    call (the caller's number, through voice_ai, which deletes the call and its words too) and
    their feedback; another customer's texts and call stay, and search finds nothing of the
    erased one. Broken on purpose: without embeddings' ``customer_erase`` the texts stay (red);
    without voice_ai's the call and its transcript stay (red)."""
    from datetime import timedelta

    from myhibachi.core.db import utcnow
    from myhibachi.core.events import deliver_due
    from myhibachi.core.scheduled import pollers
    from myhibachi.plugins.customer_export import CustomerExportPlugin
    from myhibachi.plugins.embeddings.models import ai_embedding_queue
    from myhibachi.plugins.feedback import FeedbackPlugin
    from myhibachi.plugins.voice_ai import VoiceAiPlugin
    from myhibachi.plugins.voice_ai.models import voice_calls, voice_utterances
    from tests.plugins.voice_ai.helpers import FLAG as VOICE, INCOMING, IVR, call_form, post_signed

    app = make_app([EmbeddingsPlugin(), VoiceAiPlugin(), FeedbackPlugin(), CustomerExportPlugin()],
                   flags={**FLAGS, VOICE: True, "FEATURE_FLAG_CUSTOMER_FEEDBACK_HISTORY": True,
                          "FEATURE_FLAG_CUSTOMER_EXPORT": True})
    ctx = app.state.ctx
    ana, bo = await seed.customer(phone="+12025550101"), await seed.customer(phone="+12025550188", name="Bo Li")
    booking = await seed.booking(ana, utcnow() - timedelta(days=1))
    url = "http://test/v1/webhooks/twilio"

    async def sms(c, sid, sender, body):
        params = {"MessageSid": sid, "From": sender, "To": "+15550009999", "Body": body}
        answer = await c.post("/v1/webhooks/twilio", data=params,
                              headers={"X-Twilio-Signature": ctx.ports.sms.sign_webhook(url, params)})
        assert answer.status_code == 200, answer.text

    async with client_of(app) as c:
        await sms(c, "SM1", "(202) 555-0101", "My son has a peanut allergy, can the chef skip nuts?")
        await sms(c, "SM2", "+12025550188", "What time will the chef arrive on Saturday?")
        for sid, caller in (("CA1", "+12025550101"), ("CA2", "+12025550188")):
            assert (await post_signed(c, ctx, INCOMING, call_form(sid, From=caller))).status_code == 200
            assert (await post_signed(c, ctx, IVR, call_form(sid, From=caller, Digits="1"))).status_code == 200
            said = call_form(sid, From=caller, SpeechResult=f"Book a hibachi chef for twelve guests, call {sid}")
            assert (await post_signed(c, ctx, IVR, said)).status_code == 200
    async with client_of(app, headers=await seed.staff("bookings.write")) as c:
        assert (await c.post(f"/v1/bookings/{booking}/complete")).status_code == 200
    async with client_of(app, headers=seed.token(ana)) as c:
        made = await c.post(f"/v1/customers/{ana}/feedback", json={"booking_id": str(booking), "rating": 2,
                                                                   "text": "The shrimp were cold."})
        assert made.status_code == 201, made.text
    while await deliver_due(ctx):
        pass
    assert await pollers(ctx)["embeddings"](ctx) == 5  # both SMS, both callers' words, the feedback
    async with client_of(app) as c:  # one more from Ana, still queued when she is erased
        await sms(c, "SM3", "+1 202 555 0101", "Please cancel the party")
    while await deliver_due(ctx):
        pass
    async with database.read() as conn:
        [ana_call] = await conn.scalars(sa.select(voice_calls.c.id).where(voice_calls.c.provider_call_id == "CA1"))
        assert len(await conn.fetch_all(sa.select(ai_embedding_queue))) == 1

    async with client_of(app, headers=seed.token(ana)) as c:
        export = await c.get(f"/v1/customers/{ana}/export", params={"format": "json"})
        assert export.status_code == 200, export.text
        sections = export.json()["sections"]
        assert [call["provider_call_id"] for call in sections["voice_ai.calls"]] == ["CA1"]
        assert [u["text"] for u in sections["voice_ai.utterances"]] == [
            "Book a hibachi chef for twelve guests, call CA1"]
        gone = await c.delete(f"/v1/customers/{ana}")
        assert gone.status_code == 204, gone.text
    async with database.read() as conn:
        kept = await conn.fetch_all(sa.select(ai_embeddings.c.kind, ai_embeddings.c.customer_id))
        queued = await conn.fetch_all(sa.select(ai_embedding_queue))
        calls = await conn.scalars(sa.select(voice_calls.c.provider_call_id))
        words = await conn.fetch_all(sa.select(voice_utterances.c.call_id))
    assert sorted(k["kind"] for k in kept) == ["call", "sms"] and queued == []
    assert calls == ["CA2"] and len(words) == 1 and words[0]["call_id"] != ana_call
    async with client_of(app, headers=await seed.staff("ai.read", "voice.read")) as c:
        found = await c.post("/v1/ai/embeddings/search", json={"query": "a child allergic to peanuts"})
        transcript = await c.get(f"/v1/ai/voice/calls/{ana_call}/transcript")
    assert found.status_code == 200 and "peanut" not in found.text and "shrimp" not in found.text
    assert "CA1" not in found.text and "CA2" in found.text
    assert transcript.status_code == 404
    assert bo  # Bo's texts are the ones kept above
