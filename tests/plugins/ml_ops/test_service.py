"""The AiOrchestration service as another AI plugin calls it: through the context, in the
caller's transaction, sharing the API's cache, limits and cost records."""
from __future__ import annotations

import sqlalchemy as sa

from myhibachi.core import AiOrchestration, Plugin
from myhibachi.plugins.ml_ops import MlOpsPlugin
from myhibachi.plugins.ml_ops.models import calls


class ProbePlugin(Plugin):
    name = "ai_probe"
    version = "1.0.0"
    requires = ("ml_ops",)


async def test_another_plugin_calls_models_through_the_orchestration(make_app, client_of, staff, clean_db):
    app = make_app([MlOpsPlugin(rate_per_principal=2), ProbePlugin()], flags={"FEATURE_FLAG_ML_TRAINING": True})
    ctx = app.state.ctx
    ai = ctx.service(AiOrchestration, caller="ai_probe")
    question = [{"role": "user", "content": "Which sauces come with the meal?"}]
    async with client_of(app) as c:
        asked = await c.post("/v1/ai/completions", json={"messages": question, "feature": "voice"},
                             headers=await staff(["ai.use"]))
    async with clean_db.transaction() as conn:
        answer = await ai.complete(conn, principal="plugin:ai_probe", feature="voice", messages=question)
    assert asked.status_code == 200 and answer["cached"] is True and answer["content"] == asked.json()["content"]
    async with clean_db.read() as conn:
        stored = await conn.fetch_all(sa.select(calls.c.principal, calls.c.feature).order_by(calls.c.created_at))
    assert [r["principal"].split(":")[0] for r in stored] == ["api_key", "plugin"]
    assert {r["feature"] for r in stored} == {"voice"}
