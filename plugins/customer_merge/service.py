"""Duplicates, the merge plan (what the preview shows) and the merge itself."""
from __future__ import annotations

import re
import unicodedata
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import aggregate_order_by

from sqlalchemy.dialects.postgresql import insert as pg_insert

from myhibachi.core import conflict, customers, invalid, not_found, publish, tables, vault
from myhibachi.plugins.customer_merge.models import customer_match_keys as keys
from myhibachi.plugins.customer_merge.models import customer_merges as merges

people = tables.customers
# Read with the core's own customer lookup (no statement of its own): a merged-away id
# still resolves to the customer kept.
CUSTOMER_COLUMNS = (sa.select(merges.c.target_id).where(merges.c.source_id == people.c.id)
                    .scalar_subquery().label("customer_merge.merged_into"),)
_LIVE = sa.and_(people.c.status == "active", ~sa.exists().where(merges.c.source_id == people.c.id))


_IDS = sa.func.array_agg(aggregate_order_by(people.c.id, people.c.created_at)).label("ids")
_BY_PHONE = (sa.select(people.c.phone_hash.label("key"), _IDS).where(_LIVE, people.c.phone_hash.is_not(None))
             .group_by(people.c.phone_hash).having(sa.func.count() > 1))
_BY_NAME_ADDRESS = (sa.select(keys.c.name_address.label("key"), _IDS).join(people, people.c.id == keys.c.customer_id)
                    .where(_LIVE).group_by(keys.c.name_address).having(sa.func.count() > 1))
# A name and address group whose members are exactly one phone group is listed there already:
# they share one phone number and no other live customer has it (asked of that number's
# index entries, not by grouping every customer again).
_mates = people.alias("mates")
_IS_A_PHONE_GROUP = sa.and_(
    sa.func.count(sa.distinct(people.c.phone_hash)) == 1, sa.func.count(people.c.phone_hash) == sa.func.count(),
    sa.select(sa.func.count()).where(_mates.c.phone_hash == sa.func.min(people.c.phone_hash),
                                     _mates.c.status == "active",
                                     ~sa.exists().where(merges.c.source_id == _mates.c.id))
    .scalar_subquery() == sa.func.count())
# (cursor prefix, groups, score, reason): phone groups first, then name and address groups
# that are not a phone group already
_KINDS = (("p", _BY_PHONE, 0.9, "same phone number"),
          ("n", _BY_NAME_ADDRESS, 0.8, "same name and address"))


async def duplicates(conn, ctx, *, limit: int, cursor: str | None) -> dict[str, Any]:
    """Active customers sharing a phone number (by its keyed hash; emails are unique), then
    those sharing a normalised name and address (by its keyed hash), one candidate group per
    hash, paged by kind and hash."""
    kind, after = "p", None
    if cursor:
        kind, _, mark = cursor.partition(":")
        try:
            after = bytes.fromhex(mark)
        except ValueError:
            raise invalid("query.cursor", "not a cursor of this list") from None
        if kind not in ("p", "n"):
            raise invalid("query.cursor", "not a cursor of this list")
    found: list[tuple[str, float, str, dict]] = []
    for prefix, groups, score, reason in _KINDS[[k[0] for k in _KINDS].index(kind):]:
        query = groups
        if prefix == "n":
            query = query.having(~_IS_A_PHONE_GROUP)
        if after is not None and prefix == kind:
            query = query.having(query.selected_columns.key > after)
        rows = await conn.fetch_all(query.order_by(sa.text("key")).limit(limit + 1 - len(found)))
        found += [(prefix, score, reason, r) for r in rows]
        if len(found) > limit:
            break
    page, more = found[:limit], len(found) > limit
    names = await customers.contacts(conn, ctx, [i for *_, r in page for i in r["ids"]])
    items = [{"customer_ids": [str(i) for i in r["ids"]], "score": score, "reason": reason,
              "names": [names[i]["name"] for i in r["ids"]]} for _, score, reason, r in page]
    last = page[-1] if page else None
    return {"items": items, "next_cursor": f"{last[0]}:{last[3]['key'].hex()}" if more else None}


# --- name and address keys --------------------------------------------------------------------

_ABBREVIATIONS = {"street": "st", "avenue": "ave", "road": "rd", "drive": "dr", "boulevard": "blvd",
                  "lane": "ln", "court": "ct", "place": "pl", "apartment": "apt", "suite": "ste",
                  "north": "n", "south": "s", "east": "e", "west": "w", "highway": "hwy", "parkway": "pkwy"}


def normalised(text: str, *, address: bool = False) -> str:
    """Case, accents, punctuation and spacing away; an address's usual words abbreviated, so
    "12 Oak Street, Apt. 4" and "12 oak st apt 4" are one."""
    plain = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch))
    words = re.sub(r"[^\w\s]", " ", plain).split()
    if address:
        words = [_ABBREVIATIONS.get(w, w) for w in words]
    return " ".join(words)


def match_key(ctx, name: str | None, address: str | None) -> bytes | None:
    if not name or not address:
        return None
    return vault(ctx).lookup_hash("name_address", f"{normalised(name)}|{normalised(address, address=True)}")


async def keep_keys(conn, ctx, customer_ids) -> int:
    """Write (or drop) the name and address key of each customer, from the profile as it is now."""
    ids = list(customer_ids)
    rows, none = [], []
    for cid, profile in (await customers.profiles(conn, ctx, ids)).items():
        key = match_key(ctx, profile["name"], profile["address"])
        if key:
            rows.append({"customer_id": cid, "name_address": key})
        else:
            none.append(cid)
    if rows:
        insert = pg_insert(keys)
        await conn.run(insert.on_conflict_do_update(index_elements=[keys.c.customer_id],
                                                   set_={"name_address": insert.excluded.name_address}), rows)
    if none:
        await conn.run(sa.delete(keys).where(keys.c.customer_id.in_(none)))
    return len(ids)


async def on_customer_changed(conn, event, ctx) -> None:
    p = event["payload"]
    if event["name"] == "customer.created" or {"name", "address"} & set(p.get("fields") or ()):
        await keep_keys(conn, ctx, [uuid.UUID(p["customer_id"])])


async def backfill_keys(conn, ctx) -> int:
    """Periodic: keys for customers who have none yet (those from before the plugin, or
    whose event is still on its way), a batch a run."""
    missing = await conn.scalars(sa.select(people.c.id).where(
        people.c.address_enc.is_not(None), ~sa.exists().where(keys.c.customer_id == people.c.id)).limit(1000))
    return await keep_keys(conn, ctx, missing) if missing else 0


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
            raise conflict(f"customer {cid} was merged into {gone[cid]} already", field=f"body.{field}")
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

