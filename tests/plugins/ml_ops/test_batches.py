"""Batches over HTTP: messages answered through a template by the worker, a chunk per poll,
with progress, and resumed after a worker dies mid-chunk without answering an item twice."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from myhibachi.plugins.ml_ops import MlOpsPlugin
from myhibachi.plugins.ml_ops.models import batch_items, calls
from tests.plugins.ml_ops.helpers import FLAGS, SCOPES, published, rows

TEXTS = ["Do you serve vegetarians?", "Is Sunday free?", "How long does it take?", "boom", "Thanks!"]


async def test_batch_processing(make_app, client_of, staff, drain, clean_db):
    """Broken on purpose: with a worker's crash caught as the item's failure (not the chunk
    left pending) "boom" ends failed (red); with the chunk size ignored the first poll answers
    all five (red)."""
    app = make_app([MlOpsPlugin()], flags=FLAGS)
    ctx = app.state.ctx
    headers = await staff(SCOPES)
    items = [{"ref": f"sms-{i}", "text": t} for i, t in enumerate(TEXTS)]
    async with client_of(app) as c:
        saved = await c.post("/v1/ai/templates", json={"key": "reply", "system": "Answer as My Hibachi.",
                                                       "user": "Reply to: {text}"}, headers=headers)
        queued = await c.post("/v1/ai/batches", json={"template": "reply", "chunk_size": 2, "items": items},
                              headers=headers)
        wrong_variable = await c.post("/v1/ai/batches", json={"template": "reply", "variable": "body",
                                                              "items": items}, headers=headers)
        no_template = await c.post("/v1/ai/batches", json={"template": "nope", "items": items}, headers=headers)
        empty = await c.post("/v1/ai/batches", json={"template": "reply", "items": []}, headers=headers)
        batch_id = queued.json()["id"]
        poll = ctx.extra["pollers"]["ml_ops.batches"]
        assert await poll(ctx) == 2
        first = await c.get(f"/v1/ai/batches/{batch_id}", headers=headers)

        orchestrator = ctx.extra["ml_ops.orchestrator"]
        complete = orchestrator.complete

        async def dies_on_boom(conn, **kw):
            if kw["variables"]["text"] == "boom":
                raise RuntimeError("the worker died")
            return await complete(conn, **kw)

        orchestrator.complete = dies_on_boom
        with pytest.raises(RuntimeError):
            await poll(ctx)
        crashed = await c.get(f"/v1/ai/batches/{batch_id}", headers=headers)
        orchestrator.complete = complete
        await drain(app)
        done = await c.get(f"/v1/ai/batches/{batch_id}", headers=headers)
    assert saved.status_code == 201 and queued.status_code == 202, queued.text
    assert (queued.json()["status"], queued.json()["total"], queued.json()["progress"]) == ("queued", 5, 0)
    assert [r["status"] for r in queued.json()["results"]] == ["pending"] * 5
    assert (wrong_variable.status_code, wrong_variable.json()["errors"][0]["field"]) == (422, "body.variable")
    assert (no_template.status_code, no_template.json()["errors"][0]["field"]) == (422, "body.template")
    assert (empty.status_code, empty.json()["errors"][0]["field"]) == (422, "body.items")
    assert (first.json()["status"], first.json()["processed"], first.json()["progress"]) == ("running", 2, 0.4)
    assert crashed.json()["processed"] == 2  # the dead chunk left its items pending
    result = done.json()
    assert (result["status"], result["processed"], result["failed"], result["progress"]) == ("done", 5, 0, 1.0)
    assert result["finished_at"] and [r["ref"] for r in result["results"]] == [i["ref"] for i in items]
    assert all(r["output"].endswith(f"Reply to: {t}") for r, t in zip(result["results"], TEXTS))
    assert [r["attempts"] for r in result["results"]] == [1] * 5
    stored = await rows(clean_db, sa.select(calls.c.id, calls.c.template_key))
    assert len(stored) == 5 and {s["template_key"] for s in stored} == {"reply"}  # no item answered twice
    linked = await rows(clean_db, sa.select(batch_items.c.call_id))
    assert {r["call_id"] for r in linked} == {s["id"] for s in stored}
    assert await published(clean_db, "ai.batch_completed") == [{"batch_id": batch_id, "total": 5, "failed": 0}]
    assert len(await rows(clean_db, sa.select(batch_items))) == 5  # the refused batches wrote nothing
