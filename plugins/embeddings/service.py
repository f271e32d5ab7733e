"""Embed, store and search. Vectors travel to PostgreSQL as pgvector's text form and come
back as float4[], so no type adapter is registered on the shared connections."""
from __future__ import annotations

import uuid

import sqlalchemy as sa

from myhibachi.core import vault
from myhibachi.plugins.embeddings.models import ai_embeddings as t


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
