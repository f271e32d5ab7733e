"""The AI orchestration over HTTP: the response cache, the rate limits per caller and per
model, tokens and cost per call with the cost analytics, model switching, the fallback
chain, conversation context and prompt templates; the OpenAI adapter runs against a local
stub answering in OpenAI's shapes."""
from __future__ import annotations

import json
import time
import uuid

import sqlalchemy as sa

from myhibachi.core import vault
from myhibachi.core.ports import outbox
from myhibachi.plugins.ml_ops import MlOpsPlugin
from myhibachi.plugins.ml_ops.models import aad, cache, calls, conversations, templates, turns
from myhibachi.plugins.ml_ops.service import count_tokens
from tests.plugins.ml_ops.helpers import FLAGS, SCOPES, published, rows


def app_of(make_app, httpserver=None, core=None, **settings):
    openai = {"openai_api_key": "sk-test-openai", "openai_api_base": httpserver.url_for("/v1")} if httpserver else {}
    return make_app([MlOpsPlugin(**settings)], flags=FLAGS, **openai, **(core or {}))


def ask(text: str, **kw) -> dict:
    return {"messages": [{"role": "user", "content": text}], **kw}


def openai_answer(httpserver, content: str, *, model: str = "gpt-4o-mini-2026", prompt: int = 12, completion: int = 8):
    httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_json({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": model,
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}})


async def model_requests(app) -> list[dict]:
    """What the offline LLM was asked, oldest first (opened: the messages are sealed at rest)."""
    ctx = app.state.ctx
    return [r["payload"] for r in await outbox.read(ctx.db, "llm", limit=1000, vault=vault(ctx))]


async def test_ai_caching(make_app, client_of, staff, drain, clean_db):
    """Broken on purpose: without the cache lookup the second call asks the model again and is
    not marked cached (red); a cache key without the parameters answers max_tokens=5 from the
    max_tokens=None entry (red); without the TTL in the lookup an expired entry answers (red)."""
    app = app_of(make_app)
    headers = await staff(SCOPES)
    async with client_of(app) as c:
        first = await c.post("/v1/ai/completions", json=ask("Do you cater in Brooklyn?"), headers=headers)
        again = await c.post("/v1/ai/completions", json=ask("Do you cater in Brooklyn?"), headers=headers)
        other = await c.post("/v1/ai/completions", json=ask("Do you cater in Brooklyn?", max_tokens=5),
                             headers=headers)
        fresh = await c.post("/v1/ai/completions", json=ask("Do you cater in Brooklyn?", cache=False),
                             headers=headers)
        costs = await c.get("/v1/ai/costs", params={"group_by": "model"}, headers=headers)
    assert [r.status_code for r in (first, again, other, fresh)] == [200] * 4, first.text
    assert [r.json()["cached"] for r in (first, again, other, fresh)] == [False, True, False, False]
    assert again.json()["content"] == first.json()["content"]
    assert len(await model_requests(app)) == 3  # the cached answer asked no model
    entries = await rows(clean_db, sa.select(cache))
    assert sorted(e["hits"] for e in entries) == [0, 1]
    stored = await rows(clean_db, sa.select(calls.c.cached, calls.c.cost_microcents).order_by(calls.c.created_at))
    assert [s["cached"] for s in stored] == [False, True, False, False]
    assert [p["cached"] for p in await published(clean_db, "ai.call_completed")].count(True) == 1
    assert costs.json()["cache_hit_rate"] == 0.25 and costs.json()["items"][0]["cached_calls"] == 1

    async with clean_db.transaction() as conn:  # the TTL passes for the first entry
        await conn.run(sa.update(cache).where(cache.c.hits == 1).values(expires_at=sa.func.now()))
    async with client_of(app) as c:
        expired = await c.post("/v1/ai/completions", json=ask("Do you cater in Brooklyn?"), headers=headers)
    assert expired.json()["cached"] is False and len(await model_requests(app)) == 4
    async with clean_db.transaction() as conn:
        await conn.run(sa.update(cache).values(expires_at=sa.func.now()))
    await drain(app)  # the worker's hourly job deletes what expired
    assert await rows(clean_db, sa.select(cache)) == []


async def test_ai_rate_limiting(make_app, client_of, staff, clean_db):
    """Broken on purpose: without the per-caller limit Ana's third call is answered (red);
    without the per-model limit Bo's second call is answered (red)."""
    app = app_of(make_app, rate_per_principal=2, rate_per_model=3, rate_window_seconds=60)
    ana, bo = await staff(SCOPES), await staff(SCOPES)
    async with client_of(app) as c:
        ana_calls = [await c.post("/v1/ai/completions", json=ask(f"question {i}"), headers=ana) for i in range(3)]
        bo_calls = [await c.post("/v1/ai/completions", json=ask(f"other {i}"), headers=bo) for i in range(2)]
    assert [r.status_code for r in ana_calls] == [200, 200, 429]
    assert [r.status_code for r in bo_calls] == [200, 429]
    refused = ana_calls[2]
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert int(refused.headers["Retry-After"]) >= 1 and "per 60 s for one caller" in refused.json()["detail"]
    assert "model offline" in bo_calls[1].json()["detail"]
    assert len(await rows(clean_db, sa.select(calls))) == 3  # a refused call records nothing
    assert len(await published(clean_db, "ai.call_completed")) == 3
    assert len(await model_requests(app)) == 3


async def test_ai_cost_tracking(make_app, client_of, staff, clean_db, httpserver):
    """Broken on purpose: with the completion price charged for prompt tokens the cost is
    12*60+8*60 (red); the costs grouped by feature without their filter sum every feature (red)."""
    openai_answer(httpserver, "Our chefs bring the grill.")
    app = app_of(make_app, httpserver, models="gpt-4o-mini=openai", default_model="gpt-4o-mini",
                 prices="gpt-4o-mini=15/60")
    headers = await staff(SCOPES)
    async with client_of(app) as c:
        paid = await c.post("/v1/ai/completions", json=ask("What do you bring?", feature="faq"), headers=headers)
        free = await c.post("/v1/ai/completions", json=ask("Hello there", feature="voice", model="offline"),
                            headers=headers)
        by_model = await c.get("/v1/ai/costs", params={"group_by": "model"}, headers=headers)
        by_day = await c.get("/v1/ai/costs", headers=headers)
        faq = await c.get("/v1/ai/costs", params={"group_by": "feature", "feature": "faq"}, headers=headers)
        bad = await c.get("/v1/ai/costs", params={"since": "2026-12-05", "until": "2026-12-01"}, headers=headers)
        anonymous = await c.get("/v1/ai/costs")
    assert paid.status_code == 200, paid.text
    assert (paid.json()["prompt_tokens"], paid.json()["completion_tokens"], paid.json()["cost_microcents"]) == \
        (12, 8, 12 * 15 + 8 * 60)
    assert paid.json()["model"] == "gpt-4o-mini" and free.json()["cost_microcents"] == 0
    assert free.json()["prompt_tokens"] > 0  # the offline engine counts nothing: estimated
    stored = {r["feature"]: r for r in await rows(clean_db, sa.select(calls))}
    assert (stored["faq"]["cost_microcents"], stored["faq"]["tokens_estimated"]) == (660, False)
    assert (stored["voice"]["adapter"], stored["voice"]["tokens_estimated"]) == ("offline", True)
    assert {p["feature"]: p["cost_microcents"] for p in await published(clean_db, "ai.call_completed")} == \
        {"faq": 660, "voice": 0}
    models = {r["key"]: r for r in by_model.json()["items"]}
    assert set(models) == {"gpt-4o-mini", "offline"} and models["gpt-4o-mini"]["prompt_tokens"] == 12
    assert by_model.json()["total_cost_microcents"] == 660 and by_model.json()["next_cursor"] is None
    assert len(by_day.json()["items"]) == 1 and by_day.json()["items"][0]["calls"] == 2
    assert [(r["key"], r["cost_microcents"]) for r in faq.json()["items"]] == [("faq", 660)]
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.until"
    assert anonymous.status_code == 401


def sent_models(httpserver) -> list[str]:
    return [json.loads(r.get_data())["model"] for r, _ in httpserver.log]


async def test_ai_model_switching(make_app, client_of, staff, clean_db, httpserver):
    """Broken on purpose: with the feature's model ignored the voice call goes to gpt-4o-mini
    (red); with the adapter's configured model sent instead of the catalogue's, OpenAI is asked
    for gpt-test every time (red)."""
    openai_answer(httpserver, "Yes, we do.")
    app = app_of(make_app, httpserver, models="gpt-4o-mini=openai,gpt-4o=openai", default_model="gpt-4o-mini",
                 feature_models="voice=gpt-4o", core={"openai_chat_model": "gpt-test"})
    headers = await staff(SCOPES)
    async with client_of(app) as c:
        default = await c.post("/v1/ai/completions", json=ask("Can I book?"), headers=headers)
        voice = await c.post("/v1/ai/completions", json=ask("Can I book?", feature="voice"), headers=headers)
        override = await c.post("/v1/ai/completions", json=ask("Can I book?", feature="voice", model="offline"),
                                headers=headers)
        unknown = await c.post("/v1/ai/completions", json=ask("Can I book?", model="gpt-9"), headers=headers)
    assert [r.json()["model"] for r in (default, voice, override)] == ["gpt-4o-mini", "gpt-4o", "offline"]
    assert sent_models(httpserver) == ["gpt-4o-mini", "gpt-4o"]
    assert override.json()["content"].startswith("[offline]")
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "body.model"
    assert "gpt-4o-mini" in unknown.json()["errors"][0]["message"]
    stored = await rows(clean_db, sa.select(calls.c.feature, calls.c.requested_model, calls.c.model)
                        .order_by(calls.c.created_at))
    assert [tuple(r.values()) for r in stored] == [("default", "gpt-4o-mini", "gpt-4o-mini"),
                                                   ("voice", "gpt-4o", "gpt-4o"), ("voice", "offline", "offline")]


async def test_ai_fallback_handling(make_app, client_of, staff, clean_db, httpserver):
    """Broken on purpose: with a failed model's error raised instead of trying the next, the
    call is a 503 (red); with a fallback's answer cached under the requested model, the next
    call is answered by gpt-4o-mini while saying it is cached (red); without the timeout the
    slow model's answer is awaited (red)."""
    def answer(request):
        from werkzeug import Response

        model = json.loads(request.get_data())["model"]
        if model == "gpt-4o":
            return Response(json.dumps({"error": {"message": "The model gpt-4o does not exist",
                                                  "type": "invalid_request_error", "code": "model_not_found"}}),
                            status=404, content_type="application/json")
        if model == "slow":
            time.sleep(0.4)
        return Response(json.dumps({
            "id": "chatcmpl-2", "object": "chat.completion", "created": 1700000000, "model": model,
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Sure."}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}), content_type="application/json")

    httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_handler(answer)
    models = {"models": "gpt-4o=openai,gpt-4o-mini=openai,slow=openai", "default_model": "gpt-4o",
              "fallbacks": "gpt-4o=gpt-4o-mini"}
    app = app_of(make_app, httpserver, **models)
    impatient = app_of(make_app, httpserver, **models, timeout_seconds=0.1)
    headers = await staff(SCOPES)
    async with client_of(app) as c:
        first = await c.post("/v1/ai/completions", json=ask("Is there parking?"), headers=headers)
        again = await c.post("/v1/ai/completions", json=ask("Is there parking?"), headers=headers)
    async with client_of(impatient) as c:
        slow = await c.post("/v1/ai/completions", json=ask("Is there parking?", model="slow"), headers=headers)
    assert first.status_code == 200, first.text
    assert (first.json()["requested_model"], first.json()["model"], first.json()["content"]) == \
        ("gpt-4o", "gpt-4o-mini", "Sure.")
    assert first.json()["fallback_from"][0]["model"] == "gpt-4o"
    assert "does not exist" in first.json()["fallback_from"][0]["error"]
    assert again.json()["cached"] is False and again.json()["model"] == "gpt-4o-mini"
    assert sent_models(httpserver)[:4] == ["gpt-4o", "gpt-4o-mini", "gpt-4o", "gpt-4o-mini"]
    assert (slow.json()["model"], slow.json()["fallback_from"][0]["error"]) == ("offline", "no answer within 0.1 s")
    assert await rows(clean_db, sa.select(cache)) == []  # no fallback answer stands for the requested model
    stored = await rows(clean_db, sa.select(calls.c.model, calls.c.fallback_from).order_by(calls.c.created_at))
    assert [r["model"] for r in stored] == ["gpt-4o-mini", "gpt-4o-mini", "offline"]
    assert [p["fallback"] for p in await published(clean_db, "ai.call_completed")] == [True, True, True]


async def test_ai_context_management(make_app, client_of, staff, clean_db):
    """Broken on purpose: with every earlier turn sent (no token window) the fourth call sends
    all six earlier turns (red); without the older turns folded into the summary the model
    never sees the first question (red)."""
    app = app_of(make_app, context_tokens=120)
    ana, bo = await staff(SCOPES), await staff(SCOPES)
    conversation = str(uuid.uuid4())
    questions = ["I want a hibachi party for twelve guests on Saturday. It is for my mother.",
                 "Can the chef cook without peanuts, because my sister is allergic to them?",
                 "How much is the deposit and when do I pay it?",
                 "And can we start at seven in the evening?"]
    async with client_of(app) as c:
        answers = [await c.post("/v1/ai/completions", json=ask(q, conversation_id=conversation), headers=ana)
                   for q in questions]
        stranger = await c.post("/v1/ai/completions", json=ask("hi", conversation_id=conversation), headers=bo)
    assert [a.status_code for a in answers] == [200] * 4, answers[0].text
    last = answers[-1].json()
    assert last["conversation_id"] == conversation and 0 < last["context_turns"] < 6
    assert last["summarised_turns"] >= 2
    sent = (await model_requests(app))[-1]["messages"]
    assert sum(count_tokens(m["content"]) for m in sent) <= 120
    assert sent[0]["role"] == "system" and "hibachi party for twelve guests" in sent[0]["content"]
    assert sent[-1] == {"role": "user", "content": questions[-1]}
    stored = await rows(clean_db, sa.select(turns.c.seq, turns.c.role).order_by(turns.c.seq))
    assert [r["role"] for r in stored] == ["user", "assistant"] * 4 and stored[-1]["seq"] == 8
    kept = await rows(clean_db, sa.select(conversations))
    summary = vault(app.state.ctx).decrypt(kept[0]["summary_enc"], kept[0]["key_id"],
                                           aad(conversations, "summary", kept[0]["id"]))
    assert kept[0]["summarised_through"] == last["summarised_turns"] and "I want a hibachi party" in summary
    assert stranger.status_code == 404  # another caller's conversation is not theirs to read


async def test_ai_prompt_templates(make_app, client_of, staff, clean_db):
    """Broken on purpose: with a value rendered again as a template the customer's "{secret}"
    is taken for a variable (red); with the version taken as max without the advisory lock two
    saves at once may both be version 2 (the unique key refuses one: red in a race)."""
    app = app_of(make_app)
    headers = await staff(SCOPES)
    async with client_of(app) as c:
        v1 = await c.post("/v1/ai/templates", json={"key": "faq.answer", "user": "Answer {question} briefly."},
                          headers=headers)
        v2 = await c.post("/v1/ai/templates", json={
            "key": "faq.answer", "system": "You answer for My Hibachi, to {customer}.",
            "user": "Answer {question} in one line.", "description": "shorter"}, headers=headers)
        latest = await c.get("/v1/ai/templates/faq.answer", headers=headers)
        first = await c.get("/v1/ai/templates/faq.answer", params={"version": 1}, headers=headers)
        listed = await c.get("/v1/ai/templates", headers=headers)
        done = await c.post("/v1/ai/completions", json={
            "template": "faq.answer", "variables": {"question": "is {secret} vegan?", "customer": "Ana"}},
            headers=headers)
        old = await c.post("/v1/ai/completions", json={
            "template": "faq.answer", "version": 1, "variables": {"question": "the menu"}}, headers=headers)
        missing = await c.post("/v1/ai/completions", json={"template": "faq.answer",
                                                           "variables": {"question": "x"}}, headers=headers)
        unknown = await c.post("/v1/ai/completions", json={"template": "nope", "variables": {}}, headers=headers)
        bad = await c.post("/v1/ai/templates", json={"key": "bad", "user": "Hi {0.__class__}"}, headers=headers)
        absent = await c.get("/v1/ai/templates/nope", headers=headers)
    assert (v1.status_code, v1.json()["version"], v1.json()["variables"]) == (201, 1, ["question"])
    assert (v2.json()["version"], v2.json()["variables"]) == (2, ["customer", "question"])
    assert latest.json()["version"] == 2 and first.json()["user"] == "Answer {question} briefly."
    assert [(t["key"], t["version"]) for t in listed.json()["items"]] == [("faq.answer", 2)]
    assert done.status_code == 200 and old.status_code == 200, done.text
    asked = await model_requests(app)
    assert asked[0]["messages"] == [{"role": "system", "content": "You answer for My Hibachi, to Ana."},
                                    {"role": "user", "content": "Answer is {secret} vegan? in one line."}]
    assert asked[1]["messages"] == [{"role": "user", "content": "Answer the menu briefly."}]
    assert (missing.status_code, missing.json()["errors"][0]["field"]) == (422, "body.variables.customer")
    assert (unknown.status_code, unknown.json()["errors"][0]["field"]) == (422, "body.template")
    assert (bad.status_code, bad.json()["errors"][0]["field"]) == (422, "body.user")
    assert absent.status_code == 404
    stored = await rows(clean_db, sa.select(templates.c.key, templates.c.version).order_by(templates.c.version))
    assert [tuple(r.values()) for r in stored] == [("faq.answer", 1), ("faq.answer", 2)]
    used = await rows(clean_db, sa.select(calls.c.template_key, calls.c.template_version).order_by(calls.c.created_at))
    assert [tuple(r.values()) for r in used] == [("faq.answer", 2), ("faq.answer", 1)]
    assert [p["version"] for p in await published(clean_db, "ai.template_saved")] == [1, 2]
