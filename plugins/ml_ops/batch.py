"""Messages processed in batches: each item rendered into a prompt template and answered
through the orchestration, a chunk per worker poll.

A chunk is one transaction: its items' answers, call rows and events commit together, so a
worker that dies mid-chunk leaves those items pending and the next poll resumes there,
never answering (nor paying for) an item twice. A rate limit stops the chunk where it is
(its items stay pending for a later poll); another refusal of an item fails that item
only. The batch is done when no item is pending.
"""
from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from myhibachi.core import Problem, invalid, not_found, publish, vault
from myhibachi.plugins.ml_ops import service
from myhibachi.plugins.ml_ops.models import aad, batch_items, batches

_CLAIM = (sa.select(batches).where(batches.c.status.in_(("queued", "running")))
          .order_by(batches.c.created_at).limit(1).with_for_update(skip_locked=True))
_PENDING = (sa.select(batch_items.c.seq, batch_items.c.text_enc, batch_items.c.key_id)
            .where(batch_items.c.batch_id == sa.bindparam("id"), batch_items.c.status == "pending")
            .order_by(batch_items.c.seq).limit(sa.bindparam("n")))
_DONE = (sa.update(batch_items).where(batch_items.c.batch_id == sa.bindparam("id"),
                                      batch_items.c.seq == sa.bindparam("s")))
_COUNTS = sa.select(
    sa.func.count().filter(batch_items.c.status != "pending").label("processed"),
    sa.func.count().filter(batch_items.c.status == "failed").label("failed"),
).where(batch_items.c.batch_id == sa.bindparam("id"))
_RESULTS = (sa.select(batch_items.c.seq, batch_items.c.ref, batch_items.c.status, batch_items.c.output_enc,
                      batch_items.c.key_id,
                      batch_items.c.error, batch_items.c.call_id, batch_items.c.attempts)
            .where(batch_items.c.batch_id == sa.bindparam("id")).order_by(batch_items.c.seq))


async def start(conn, ctx, body, actor: str) -> dict[str, Any]:
    orchestrator = service.orchestrator_of(ctx)
    tpl = await service.template_of(conn, body.template, body.version, field="template")
    if body.variable not in tpl["variables"]:
        raise invalid("variable", f"is not a variable of template {tpl['key']!r} v{tpl['version']} "
                                  f"({', '.join(tpl['variables']) or 'none'})")
    if len(tpl["variables"]) > 1:
        raise invalid("template", f"template {tpl['key']!r} v{tpl['version']} needs {', '.join(tpl['variables'])}; "
                                  "a batch fills one variable")
    model = orchestrator.catalogue.choose(body.feature, body.model) if body.model else None
    batch_id = uuid.uuid4()
    await conn.run(sa.insert(batches).values(
        id=batch_id, feature=body.feature, template_key=tpl["key"], template_version=tpl["version"],
        variable=body.variable, model=model, chunk_size=body.chunk_size or orchestrator.settings.batch_chunk_size,
        total=len(body.items), requested_by=actor))
    v = vault(ctx)
    await conn.run(sa.insert(batch_items), [
        {"batch_id": batch_id, "seq": i + 1, "ref": item.ref, "key_id": v.current_id,
         "text_enc": v.encrypt(item.text, aad(batch_items, "text", batch_id, i + 1))}
        for i, item in enumerate(body.items)])
    return await view(conn, ctx, batch_id)


def _opened(ctx, batch_id: uuid.UUID, row: dict[str, Any]) -> dict[str, Any]:
    key_id = row.pop("key_id")
    output = vault(ctx).decrypt(row.pop("output_enc"), key_id, aad(batch_items, "output", batch_id, row["seq"]))
    return {**row, "output": output}


async def view(conn, ctx, batch_id: uuid.UUID) -> dict[str, Any]:
    batch = await conn.fetch_one(sa.select(batches).where(batches.c.id == batch_id))
    if batch is None:
        raise not_found("Batch")
    counts = await conn.fetch_one(_COUNTS, {"id": batch_id})
    return {**batch, **counts, "progress": round(counts["processed"] / batch["total"], 4),
            "results": [_opened(ctx, batch_id, r) for r in await conn.fetch_all(_RESULTS, {"id": batch_id})]}


async def step(ctx) -> int:
    """Process the next chunk of the oldest unfinished batch; returns the items handled."""
    orchestrator = service.orchestrator_of(ctx)
    async with ctx.db.transaction() as conn:
        batch = await conn.fetch_one(_CLAIM)
        if batch is None:
            return 0
        chunk = await conn.fetch_all(_PENDING, {"id": batch["id"], "n": batch["chunk_size"]})
        handled, v = 0, vault(ctx)
        for item in chunk:
            text = v.decrypt(item["text_enc"], item["key_id"], aad(batch_items, "text", batch["id"], item["seq"]))
            try:
                async with conn.savepoint():
                    answer = await orchestrator.complete(
                        conn, principal=batch["requested_by"], feature=batch["feature"],
                        template=batch["template_key"], version=batch["template_version"],
                        variables={batch["variable"]: text}, model=batch["model"])
            except Problem as refused:
                if refused.status == 429:  # over a rate limit: the rest of the chunk waits for a later poll
                    break
                await conn.run(_DONE.values(status="failed", error=f"{refused.title}: {refused.detail}"[:2000],
                                            attempts=batch_items.c.attempts + 1, finished_at=sa.func.now()),
                               {"id": batch["id"], "s": item["seq"]})
            else:
                # the text sealed again with the output: a row's fields share the current key
                sealed = {f"{f}_enc": v.encrypt(value, aad(batch_items, f, batch["id"], item["seq"]))
                          for f, value in (("text", text), ("output", answer["content"]))}
                await conn.run(_DONE.values(status="done", **sealed, key_id=v.current_id, call_id=answer["call_id"],
                                            attempts=batch_items.c.attempts + 1, finished_at=sa.func.now()),
                               {"id": batch["id"], "s": item["seq"]})
            handled += 1
        counts = await conn.fetch_one(_COUNTS, {"id": batch["id"]})
        finished = counts["processed"] == batch["total"]
        await conn.run(sa.update(batches).where(batches.c.id == batch["id"]).values(
            status="done" if finished else "running", finished_at=sa.func.now() if finished else None))
        if finished:
            await publish(conn, ctx, "ai.batch_completed", {"batch_id": str(batch["id"]), "total": batch["total"],
                                                            "failed": counts["failed"]}, actor=batch["requested_by"])
        return handled
