"""Embed, store and search. Vectors travel to PostgreSQL as pgvector's text form and come
back as float4[], so no type adapter is registered on the shared connections."""
from __future__ import annotations

import uuid

import sqlalchemy as sa

from sqlalchemy.dialects.postgresql import insert

from myhibachi.core import vault, webhooks
from myhibachi.plugins.embeddings.models import ai_embedding_queue as queue

BATCH = 64


def literal(vector) -> str:
    return "[" + ",".join(f"{v:.7g}" for v in vector) + "]"


def _aad(row_id) -> str:
    return f"ai_embeddings:{row_id}:text"


_INSERT = sa.text(
    "INSERT INTO ai_embeddings (id, kind, source_id, label, text_enc, key_id, model, dimensions, embedding) "
    "VALUES (:id, :kind, :source_id, :label, :text_enc, :key_id, :model, :dimensions, CAST(:embedding AS vector))")

_SEARCH = sa.text(
    "SELECT id, kind, source_id, label, text_enc, key_id, 1 - (embedding <=> CAST(:q AS vector)) AS score "
    "FROM ai_embeddings WHERE model = :model AND (CAST(:kind AS text) IS NULL OR kind = :kind) "
    "ORDER BY embedding <=> CAST(:q AS vector) LIMIT :limit")


async def store(conn, ctx, items) -> list[dict]:
    """Embed ``items`` (``text``, ``kind``, ``source_id``, ``label``) in one call of the port and
    store a row each."""
    port = ctx.ports.embeddings
    vectors = await port.embed([i["text"] for i in items])
    return await _store(conn, ctx, items, vectors)


async def _store(conn, ctx, items, vectors) -> list[dict]:
    port = ctx.ports.embeddings
    box = vault(ctx)
    rows = []
    for item, vector in zip(items, vectors):
        row_id = uuid.uuid4()
        rows.append({"id": row_id, "kind": item["kind"], "source_id": item.get("source_id"),
                     "label": item.get("label"), "text_enc": box.encrypt(item["text"], _aad(row_id)),
                     "key_id": box.current_id, "model": port.model, "dimensions": len(vector),
                     "embedding": literal(vector)})
    await conn.run(_INSERT, rows)
    return [{**r, "embedding": v} for r, v in zip(rows, vectors)]


async def search(conn, ctx, query: str, *, limit: int = 10, kind: str | None = None, ef_search: int = 40):
    port = ctx.ports.embeddings
    [vector] = await port.embed([query])
    async with conn.savepoint():
        await conn.run(sa.text(f"SET LOCAL hnsw.ef_search = {int(max(ef_search, limit))}"), {})
        rows = await conn.fetch_all(_SEARCH, {"q": literal(vector), "model": port.model, "kind": kind,
                                              "limit": limit})
    box = vault(ctx)
    return port.model, [{**r, "text": box.decrypt(r["text_enc"], r["key_id"], _aad(r["id"]))} for r in rows]


_SIMILAR = sa.text(
    "SELECT o.id, o.kind, o.source_id, o.label, o.text_enc, o.key_id, 1 - (o.embedding <=> s.embedding) AS score "
    "FROM ai_embeddings s JOIN LATERAL (SELECT * FROM ai_embeddings o WHERE o.model = s.model AND o.id <> s.id "
    "AND o.source_id IS DISTINCT FROM s.source_id ORDER BY o.embedding <=> s.embedding LIMIT :limit) o ON true "
    "WHERE s.source_id = :source_id AND s.model = :model ORDER BY score DESC LIMIT :limit")


async def similar(conn, ctx, source_id: str, *, limit: int = 10) -> list[dict] | None:
    """The stored texts nearest the conversation ``source_id``; None when it is not embedded."""
    port = ctx.ports.embeddings
    rows = await conn.fetch_all(_SIMILAR, {"source_id": source_id, "model": port.model, "limit": limit})
    if not rows and not await conn.scalar(sa.text("SELECT 1 FROM ai_embeddings WHERE source_id = :s AND model = :m"),
                                          {"s": source_id, "m": port.model}):
        return None
    box = vault(ctx)
    return [{**r, "text": box.decrypt(r["text_enc"], r["key_id"], _aad(r["id"]))} for r in rows]


def _queue_aad(source_id: str) -> str:
    return f"ai_embedding_queue:{source_id}:text"


async def enqueue(conn, ctx, kind: str, source_id: str, text: str) -> None:
    """Queue a conversation's text for the worker (once per source: a redelivery adds nothing)."""
    box = vault(ctx)
    await conn.run(insert(queue).values(id=uuid.uuid4(), kind=kind, source_id=source_id, key_id=box.current_id,
                                        text_enc=box.encrypt(text, _queue_aad(source_id)))
                   .on_conflict_do_nothing(index_elements=["source_id"]))


async def on_inbound_sms(conn, event, ctx) -> None:
    """An SMS to one of our numbers: its text joins the conversations to embed."""
    data = await webhooks.data_of(conn, ctx, event)
    if (data.get("Body") or "").strip():
        await enqueue(conn, ctx, "sms", data.get("MessageSid") or event["payload"]["event_id"], data["Body"])


_CLAIM = sa.select(queue).order_by(queue.c.created_at).limit(sa.bindparam("limit")).with_for_update(skip_locked=True)


async def embed_queued(ctx, batch: int = BATCH) -> int:
    """One worker round: claim up to ``batch`` queued texts, embed them in one call of the
    port, store them and drop them from the queue. Answers how many."""
    box = vault(ctx)
    async with ctx.db.transaction() as conn:
        claimed = await conn.fetch_all(_CLAIM, {"limit": batch})
        if not claimed:
            return 0
        items = [{"kind": r["kind"], "source_id": r["source_id"], "label": None,
                  "text": box.decrypt(r["text_enc"], r["key_id"], _queue_aad(r["source_id"]))} for r in claimed]
        vectors = await ctx.ports.embeddings.embed([i["text"] for i in items])
        await _store(conn, ctx, items, vectors)
        await conn.run(sa.delete(queue).where(queue.c.id == sa.func.any(sa.bindparam("ids"))),
                       {"ids": [r["id"] for r in claimed]})
    return len(claimed)
