"""Duplicates, the merge plan (what the preview shows) and the merge itself."""
from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import aggregate_order_by

from myhibachi.core import conflict, customers, invalid, not_found, publish, tables
from myhibachi.plugins.customer_merge.models import customer_merges as merges

people = tables.customers
# Read with the core's own customer lookup (no statement of its own): a merged-away id
# still resolves to the customer kept.
CUSTOMER_COLUMNS = (sa.select(merges.c.target_id).where(merges.c.source_id == people.c.id)
                    .scalar_subquery().label("customer_merge.merged_into"),)
_LIVE = sa.and_(people.c.status == "active", ~sa.exists().where(merges.c.source_id == people.c.id))


async def duplicates(conn, ctx, *, limit: int, cursor: str | None) -> dict[str, Any]:
    """Active customers sharing a phone number (by its keyed hash; emails are unique), one
    candidate group per number, paged by the hash."""
    query = (sa.select(people.c.phone_hash, sa.func.array_agg(aggregate_order_by(people.c.id, people.c.created_at))
                       .label("ids"))
             .where(_LIVE, people.c.phone_hash.is_not(None)).group_by(people.c.phone_hash)
             .having(sa.func.count() > 1).order_by(people.c.phone_hash).limit(limit + 1))
    if cursor:
        try:
            after = bytes.fromhex(cursor)
        except ValueError:
            raise invalid("cursor", "not a cursor of this list") from None
        query = query.where(people.c.phone_hash > after)
    rows = await conn.fetch_all(query)
    page, more = rows[:limit], len(rows) > limit
    names = await customers.contacts(conn, ctx, [i for r in page for i in r["ids"]])
    items = [{"customer_ids": [str(i) for i in r["ids"]], "score": 0.9, "reason": "same phone number",
              "names": [names[i]["name"] for i in r["ids"]]} for r in page]
    return {"items": items, "next_cursor": page[-1]["phone_hash"].hex() if more else None}


def _choose(field: str, kept: str | None, other: str | None) -> dict[str, Any]:
    if field == "email" or not other:
        return {"value": kept, "source": "target", "why": "the target's own" if kept else "neither has one"}
    if not kept:
        return {"value": other, "source": "source", "why": "only the source has one"}
    if field in ("name", "address") and len(other.strip()) > len(kept.strip()):
        return {"value": other, "source": "source", "why": "the source's is more complete"}
    return {"value": kept, "source": "target", "why": "both have one; the target's is kept"}


async def plan(conn, ctx, source_id: uuid.UUID, target_id: uuid.UUID, *, lock: bool = False) -> dict[str, Any]:
    """What a merge of ``source_id`` into ``target_id`` would do; refuses what may not merge."""
    if source_id == target_id:
        raise invalid("target_id", "a customer cannot be merged with itself")
    found = sa.select(people.c.id).where(people.c.id.in_([source_id, target_id])).order_by(people.c.id)
    ids = {r["id"] for r in await conn.fetch_all(found.with_for_update() if lock else found)}
    if len(ids) < 2:
        raise not_found("Customer")
    gone = {r["source_id"]: r["target_id"] for r in await conn.fetch_all(
        sa.select(merges).where(merges.c.source_id.in_([source_id, target_id])))}
    for cid, field in ((target_id, "target_id"), (source_id, "source_id")):
        if cid in gone:
            raise conflict(f"customer {cid} was merged into {gone[cid]} already", field=field)
    source = await customers.get_customer(conn, ctx, source_id)
    target = await customers.get_customer(conn, ctx, target_id)
    moving = await conn.scalar(sa.select(sa.func.count()).select_from(tables.bookings)
                               .where(tables.bookings.c.customer_id == source_id))
    return {"source_id": str(source_id), "target_id": str(target_id), "bookings_to_move": moving,
            "fields": {f: _choose(f, target[f], source[f]) for f in customers.PII}}


async def merge(conn, ctx, source_id: uuid.UUID, target_id: uuid.UUID, principal) -> dict[str, Any]:
    """Merge in the caller's transaction: everything below commits together or not at all."""
    planned = await plan(conn, ctx, source_id, target_id, lock=True)
    moved = await conn.run(sa.update(tables.bookings).where(tables.bookings.c.customer_id == source_id)
                           .values(customer_id=target_id))
    await ctx.hooks(principal.flag_context()).customer_merge(source_id=source_id, target_id=target_id, conn=conn)
    taken = {f: c["value"] for f, c in planned["fields"].items() if c["source"] == "source"}
    if taken:
        await customers.update_customer(conn, ctx, target_id, actor=principal.id, **taken)
    await customers.update_customer(conn, ctx, source_id, actor=principal.id, status="disabled")
    # customers merged into the source earlier now resolve to the target directly
    await conn.run(sa.update(merges).where(merges.c.target_id == source_id).values(target_id=target_id))
    await conn.run(sa.insert(merges).values(
        source_id=source_id, target_id=target_id, actor_kind=principal.kind, actor_id=principal.id,
        taken={f: planned["fields"][f]["why"] for f in taken}, bookings_moved=moved))
    await publish(conn, ctx, "customer.merged", {"source_id": str(source_id), "target_id": str(target_id),
                                                 "bookings_moved": moved}, actor=principal.id)
    return {**planned, "bookings_to_move": moved, "merged": True}

