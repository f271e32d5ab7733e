"""Embed, store and search. Vectors travel to PostgreSQL as pgvector's text form and come
back as float4[], so no type adapter is registered on the shared connections."""
from __future__ import annotations

import uuid

import sqlalchemy as sa

from sqlalchemy.dialects.postgresql import insert

from myhibachi.core import (CallTranscripts, CustomerFeedback, customers, fetch_page, publish_many, reseal, tables,
                            vault, webhooks)
from myhibachi.plugins.embeddings.models import ai_embedding_queue as queue
from myhibachi.plugins.embeddings.models import ai_embeddings

BATCH = 64


def literal(vector) -> str:
    return "[" + ",".join(f"{v:.7g}" for v in vector) + "]"


def aad(row_id) -> str:
    return f"ai_embeddings:{row_id}:text"


_INSERT = sa.text(
    "INSERT INTO ai_embeddings (id, kind, source_id, label, text_enc, key_id, model, dimensions, embedding, "
    "customer_id, phone_hash) VALUES (:id, :kind, :source_id, :label, :text_enc, :key_id, :model, :dimensions, "
    "CAST(:embedding AS vector), :customer_id, :phone_hash)")

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
                     "label": item.get("label"), "text_enc": box.encrypt(item["text"], aad(row_id)),
                     "key_id": box.current_id, "model": port.model, "dimensions": len(vector),
                     "embedding": literal(vector), "customer_id": item.get("customer_id"),
                     "phone_hash": item.get("phone_hash")})
    await conn.run(_INSERT, rows)
    await publish_many(conn, ctx, "embedding.stored", [
        {"embedding_id": str(r["id"]), "kind": r["kind"], "source_id": r["source_id"], "model": r["model"],
         "dimensions": r["dimensions"]} for r in rows])
    return [{**r, "embedding": v} for r, v in zip(rows, vectors)]


_HIT = (ai_embeddings.c.id, ai_embeddings.c.kind, ai_embeddings.c.source_id, ai_embeddings.c.label,
        ai_embeddings.c.text_enc, ai_embeddings.c.key_id)


async def nearest(conn, ctx, vector: str, *, limit: int, cursor: str | None, ef_search: int,
                   where=()) -> tuple[list[dict], str | None]:
    """One page of the stored texts of the port's model nearest ``vector``, by cosine distance
    then id: the HNSW index orders them and its iterative scan goes on past a cursor."""
    distance = ai_embeddings.c.embedding.cosine_distance(sa.cast(sa.literal(vector), ai_embeddings.c.embedding.type))
    distance = distance.label("distance")
    query = sa.select(*_HIT, distance).where(ai_embeddings.c.model == ctx.ports.embeddings.model, *where)
    async with conn.savepoint():
        await conn.run(sa.text(f"SET LOCAL hnsw.ef_search = {min(max(int(ef_search), limit + 1), 1000)}"), {})
        await conn.run(sa.text("SET LOCAL hnsw.iterative_scan = strict_order"), {})
        rows, after = await fetch_page(conn, query, [distance, ai_embeddings.c.id], limit=limit, cursor=cursor,
                                       descending=False)
    box = vault(ctx)
    return [{**r, "score": 1 - r["distance"], "text": box.decrypt(r["text_enc"], r["key_id"], aad(r["id"]))}
            for r in rows], after


async def search(conn, ctx, query: str, *, limit: int, cursor: str | None = None, kind: str | None = None,
                 ef_search: int = 40) -> tuple[list[dict], str | None]:
    """One page of the stored texts nearest ``query`` in meaning (only of ``kind`` if given)."""
    [vector] = await ctx.ports.embeddings.embed([query])
    where = () if kind is None else (ai_embeddings.c.kind == kind,)
    return await nearest(conn, ctx, literal(vector), limit=limit, cursor=cursor, ef_search=ef_search, where=where)


async def similar(conn, ctx, source_id: str, *, limit: int, cursor: str | None = None,
                  ef_search: int = 40) -> tuple[list[dict], str | None] | None:
    """One page of the stored texts of other sources nearest the conversation ``source_id``
    (its first embedded text); None when it is not embedded."""
    vector = await conn.scalar(
        sa.select(sa.cast(ai_embeddings.c.embedding, sa.Text))
        .where(ai_embeddings.c.source_id == source_id, ai_embeddings.c.model == ctx.ports.embeddings.model)
        .order_by(ai_embeddings.c.created_at, ai_embeddings.c.id).limit(1))
    if vector is None:
        return None
    return await nearest(conn, ctx, vector, limit=limit, cursor=cursor, ef_search=ef_search,
                          where=(ai_embeddings.c.source_id.is_distinct_from(source_id),))


def _queue_aad(source_id: str) -> str:
    return f"ai_embedding_queue:{source_id}:text"


async def enqueue(conn, ctx, kind: str, source_id: str, text: str, *, customer_id: uuid.UUID | None = None,
                  phone_hash: bytes | None = None) -> None:
    """Queue a conversation's text for the worker (once per source: a redelivery adds nothing),
    with whose words they are (``customer_id`` or ``phone_hash``) for an erasure."""
    box = vault(ctx)
    await conn.run(insert(queue).values(id=uuid.uuid4(), kind=kind, source_id=source_id, key_id=box.current_id,
                                        text_enc=box.encrypt(text, _queue_aad(source_id)), customer_id=customer_id,
                                        phone_hash=phone_hash)
                   .on_conflict_do_nothing(index_elements=["source_id"]))


async def on_inbound_sms(conn, event, ctx) -> None:
    """An SMS to one of our numbers: its text joins the conversations to embed."""
    data = await webhooks.data_of(conn, ctx, event)
    if (data.get("Body") or "").strip():
        await enqueue(conn, ctx, "sms", data.get("MessageSid") or event["payload"]["event_id"], data["Body"],
                      phone_hash=customers.phone_hash(ctx, data.get("From")))


async def on_utterance(conn, event, ctx) -> None:
    """What a caller said (voice_ai's transcript) joins the conversations to embed, as a ``call``."""
    utterance = event["payload"]["utterance_id"]
    text = await ctx.service(CallTranscripts, caller="embeddings").utterance_text(conn, uuid.UUID(utterance))
    if (text or "").strip():
        caller = event["payload"].get("phone_hash")
        await enqueue(conn, ctx, "call", utterance, text, phone_hash=bytes.fromhex(caller) if caller else None)


async def on_feedback(conn, event, ctx) -> None:
    """What a customer said of their booking (the feedback plugin's) joins the conversations, as ``feedback``."""
    feedback = event["payload"]["feedback_id"]
    text = await ctx.service(CustomerFeedback, caller="embeddings").feedback_text(conn, uuid.UUID(feedback))
    if (text or "").strip():
        await enqueue(conn, ctx, "feedback", feedback, text, customer_id=uuid.UUID(event["payload"]["customer_id"]))


_CLAIM = sa.select(queue).order_by(queue.c.created_at).limit(sa.bindparam("limit")).with_for_update(skip_locked=True)


async def embed_queued(ctx, batch: int = BATCH) -> int:
    """One worker round: claim up to ``batch`` queued texts, embed them in one call of the
    port, store them and drop them from the queue. Answers how many."""
    box = vault(ctx)
    async with ctx.db.transaction() as conn:
        claimed = await conn.fetch_all(_CLAIM, {"limit": batch})
        if not claimed:
            return 0
        items = [{"kind": r["kind"], "source_id": r["source_id"], "label": None, "customer_id": r["customer_id"],
                  "phone_hash": r["phone_hash"],
                  "text": box.decrypt(r["text_enc"], r["key_id"], _queue_aad(r["source_id"]))} for r in claimed]
        vectors = await ctx.ports.embeddings.embed([i["text"] for i in items])
        await _store(conn, ctx, items, vectors)
        await conn.run(sa.delete(queue).where(queue.c.id == sa.func.any(sa.bindparam("ids"))),
                       {"ids": [r["id"] for r in claimed]})
    return len(claimed)


# Rows of another model than the port's (a model switch): found through the model's index
# (two ranges, as <> would scan), re-embedded from their sealed text in batches.
_STALE = (sa.select(ai_embeddings.c.id, ai_embeddings.c.text_enc, ai_embeddings.c.key_id)
          .where(sa.or_(ai_embeddings.c.model < sa.bindparam("model"), ai_embeddings.c.model > sa.bindparam("model")))
          .limit(sa.bindparam("limit")).with_for_update(skip_locked=True))
_REEMBED = sa.text("UPDATE ai_embeddings SET model = :model, dimensions = :dimensions, "
                   "embedding = CAST(:embedding AS vector) WHERE id = :id")


async def reembed_stale(ctx, batch: int = BATCH) -> int:
    """One worker round after a model switch: up to ``batch`` rows of another model are embedded
    again by the port's model in one call, so search never compares two spaces. Answers how many."""
    port, box = ctx.ports.embeddings, vault(ctx)
    async with ctx.db.transaction() as conn:
        rows = await conn.fetch_all(_STALE, {"model": port.model, "limit": batch})
        if not rows:
            return 0
        vectors = await port.embed([box.decrypt(r["text_enc"], r["key_id"], aad(r["id"])) for r in rows])
        await conn.run(_REEMBED, [{"id": r["id"], "model": port.model, "dimensions": len(v), "embedding": literal(v)}
                                  for r, v in zip(rows, vectors)])
    return len(rows)


async def work(ctx) -> int:
    """The worker's poller: the queued conversations first, then rows a model switch left."""
    return await embed_queued(ctx) or await reembed_stale(ctx)


# --- erasure ---------------------------------------------------------------------------------

_PHONE_OF = sa.select(tables.customers.c.phone_hash).where(tables.customers.c.id == sa.bindparam("id"))


async def erase_customer(conn, customer_id: uuid.UUID) -> None:
    """The customer's texts go, stored or queued: their feedback, and what was written or said
    from their number (texts stored before owners were recorded carry none and stay)."""
    digest = await conn.scalar(_PHONE_OF, {"id": customer_id})
    for table in (ai_embeddings, queue):
        whose = table.c.customer_id == customer_id
        await conn.run(sa.delete(table).where(sa.or_(whose, table.c.phone_hash == digest) if digest else whose))


async def rotate_keys(conn, ctx, *, batch: int) -> int:
    """Every stored and queued text sealed again under the current PII key."""
    return (await reseal(conn, ctx, ai_embeddings, lambda row, field: aad(row["id"]), batch=batch)
            + await reseal(conn, ctx, queue, lambda row, field: _queue_aad(row["source_id"]), batch=batch))
