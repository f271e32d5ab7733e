"""Waitlist: joining, the queue's order, offers that hold a freed slot (counted by the core's
capacity as ``SlotLimit.held``), their lapse, and conversion through the core's create path.

An offer holds its place through the core's ``bookings.hold`` (the core counts it in
availability and create like a booking, except for the customer it is held for) and
releases it when accepted, withdrawn or lapsed. Offer-making takes the freed place's slot
locks before it looks for a fitting entry, so a create of that place waits for the offer and
then counts it (and an offer never goes to a place a create took meanwhile); offers for a day
are made under an exclusive advisory lock of that (UTC) day, so two cancellations handled at
once never offer one entry twice.
"""
from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from myhibachi.core import (Messaging, Principal, Problem, bookings, check_owner_or, claim_due, conflict,
                            fetch_page, invalid, not_found, publish, tables, utcnow)
from myhibachi.plugins.waitlist.models import WAITING, entries, offers

UTC = timezone.utc
_LOCK_SPACE = 0x57A1 << 32  # advisory lock keys: this + the UTC day's ordinal

_EXCLUSIVE = sa.text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k")

def settings_of(ctx):
    return ctx.plugins.get("waitlist").settings


def day_keys(start: datetime, end: datetime) -> list[int]:
    first, last = start.astimezone(UTC).date(), (end - timedelta(microseconds=1)).astimezone(UTC).date()
    return [_LOCK_SPACE + first.toordinal() + i for i in range((last - first).days + 1)]


# --- entries ---------------------------------------------------------------------------------


def _forbidden(detail: str, permission: str = "waitlist.write") -> Problem:
    return Problem(403, "Forbidden", detail, kind="forbidden", permission=permission)


async def join(conn, ctx, principal: Principal, body) -> dict[str, Any]:
    rules = bookings.rules_of(ctx)
    if principal.kind == "customer":
        customer_id = bookings.own_id(principal)
        if body.customer_id not in (None, customer_id):
            raise _forbidden("customers wait for themselves only")
        if body.priority is not None:
            raise _forbidden("only staff set a priority")
    elif principal.can("waitlist.write"):
        if body.customer_id is None:
            raise invalid("customer_id", "staff name the customer who waits")
        customer_id = body.customer_id
        if await conn.scalar(sa.select(tables.customers.c.id).where(tables.customers.c.id == customer_id)) is None:
            raise invalid("customer_id", "no such customer")
    else:
        raise _forbidden("missing permission waitlist.write")
    tz_name = body.time_zone or rules.default_time_zone
    tz = bookings.zone(tz_name)
    now = utcnow()
    if body.requested_date < now.astimezone(tz).date():
        raise invalid("requested_date", "is in the past")
    problem = bookings.party_problem(rules, body.party_size, 0)
    if problem:
        raise invalid("party_size", problem[1])
    expires = body.expires_at or datetime.combine(body.requested_date + timedelta(days=1), time(0), tz)
    expires = expires if expires.tzinfo else expires.replace(tzinfo=tz)
    if expires <= now:
        raise invalid("expires_at", "must be in the future")
    tier = await ctx.hooks(Principal("customer", str(customer_id)).flag_context()).customer_tier(
        customer_id=customer_id, conn=conn)
    priority = (body.priority or 0) + settings_of(ctx).priority_of(tier)
    try:
        async with conn.savepoint():
            row = await conn.fetch_one(sa.insert(entries).values(
                id=uuid.uuid4(), customer_id=customer_id, requested_date=body.requested_date,
                requested_time=body.requested_time, time_zone=tz_name, party_size=body.party_size,
                zip_code=body.zip_code, priority=priority, expires_at=expires).returning(entries))
    except psycopg.errors.UniqueViolation:
        raise conflict("this customer already waits for that date and time") from None
    return _view(row, None)


def _view(row, offer) -> dict[str, Any]:
    return {**row, "offer": dict(offer) if offer else None}


_HELD_OF = sa.select(offers).where(offers.c.entry_id == sa.func.any(sa.bindparam("ids", type_=ARRAY(sa.UUID))),
                                   offers.c.status == "offered")


async def _with_offers(conn, rows) -> list[dict[str, Any]]:
    found = {o["entry_id"]: o for o in await conn.fetch_all(_HELD_OF, {"ids": [r["id"] for r in rows]})} if rows else {}
    return [_view(r, found.get(r["id"])) for r in rows]


async def entry_for(conn, principal: Principal, entry_id: uuid.UUID, permission: str, *,
                    for_update: bool = False) -> dict[str, Any]:
    q = sa.select(entries).where(entries.c.id == entry_id)
    row = await conn.fetch_one(q.with_for_update() if for_update else q)
    check_owner_or(principal, row and row["customer_id"], permission, "waitlist entry")
    if row is None:
        raise not_found("waitlist entry")
    return row


async def get_entry(conn, principal: Principal, entry_id: uuid.UUID) -> dict[str, Any]:
    return (await _with_offers(conn, [await entry_for(conn, principal, entry_id, "waitlist.read")]))[0]


async def list_entries(conn, *, status, requested_date, customer_id, limit: int, cursor: str | None) -> dict:
    query = sa.select(entries)
    if status:
        query = query.where(entries.c.status == status)
    if requested_date:
        query = query.where(entries.c.requested_date == requested_date)
    if customer_id:
        query = query.where(entries.c.customer_id == customer_id)
    rows, nxt = await fetch_page(conn, query, (entries.c.created_at, entries.c.id), limit=limit, cursor=cursor,
                                 descending=False)
    return {"items": await _with_offers(conn, rows), "next_cursor": nxt}


_HELD_FOR = sa.select(offers).where(offers.c.entry_id == sa.bindparam("entry_id"),
                                    offers.c.status == "offered").with_for_update()


async def remove(conn, ctx, principal: Principal, entry_id: uuid.UUID) -> dict[str, Any]:
    """The customer leaves the list (or staff remove them); a slot held for them goes to the next."""
    row = await entry_for(conn, principal, entry_id, "waitlist.write", for_update=True)
    if row["status"] in WAITING:
        held = await conn.fetch_one(_HELD_FOR, {"entry_id": entry_id})
        row = await _set_entry(conn, entry_id, status="cancelled")
        if held is not None:
            await _settle(conn, held["id"], "withdrawn")
            await offer_slot(conn, ctx, held)
    return _view(row, None)


async def _settle(conn, offer_id: uuid.UUID, status: str) -> None:
    """The offer is over (accepted, withdrawn, lapsed): its place no longer held."""
    await conn.run(sa.update(offers).where(offers.c.id == offer_id).values(status=status))
    await bookings.release(conn, offer_id)


async def _set_entry(conn, entry_id: uuid.UUID, **values):
    return await conn.fetch_one(sa.update(entries).where(entries.c.id == entry_id)
                                .values(**values, updated_at=sa.func.now()).returning(entries))


async def convert(conn, ctx, principal: Principal, entry_id: uuid.UUID, body) -> dict[str, Any]:
    """The entry becomes a booking through the core's create path: at the slot held for it,
    or (without an offer) at a free start of its day."""
    e = await entry_for(conn, principal, entry_id, "waitlist.write", for_update=True)
    if e["status"] not in WAITING:
        raise conflict(f"a {e['status']} entry cannot be converted", current_status=e["status"])
    held = await conn.fetch_one(_HELD_FOR, {"entry_id": entry_id})
    now = utcnow()
    if held is not None and held["expires_at"] <= now:
        raise conflict("the offer has lapsed")
    if held is not None:
        if body.starts_at is not None:
            raise invalid("starts_at", "the offer holds its own start; leave starts_at out")
        starts_at, time_zone = held["starts_at"], held["time_zone"]
        duration = int((held["ends_at"] - held["starts_at"]).total_seconds() // 60)
    else:
        if body.starts_at is None:
            raise invalid("starts_at", "no slot is held for this entry: give a free start on its day")
        tz = bookings.zone(e["time_zone"])
        starts_at, time_zone, duration = bookings.resolve_start(body.starts_at, tz), e["time_zone"], None
        if starts_at.astimezone(tz).date() != e["requested_date"]:
            raise invalid("starts_at", f"the entry waits for {e['requested_date'].isoformat()}")
    data = ctx.models.booking_create(
        starts_at=starts_at, time_zone=time_zone, duration_minutes=duration, adults=e["party_size"], children=0,
        address=body.address, zip_code=body.zip_code or e["zip_code"], notes=body.notes,
        customer_id=e["customer_id"] if principal.is_staff else None)
    booking = await bookings.create_booking(conn, ctx, principal, data)
    if held is not None:
        await _settle(conn, held["id"], "accepted")
    row = await _set_entry(conn, entry_id, status="converted", converted_booking_id=booking["id"])
    await publish(conn, ctx, "waitlist.converted", {"entry_id": str(entry_id), "booking_id": str(booking["id"]),
                                                   "customer_id": str(e["customer_id"])})
    return _view(row, None)


# --- offers ---------------------------------------------------------------------------------

_LOCAL = sa.func.timezone(entries.c.time_zone, sa.bindparam("start", type_=sa.DateTime(timezone=True)))
_CANDIDATES = (sa.select(entries).where(
    entries.c.status == "active", entries.c.expires_at > sa.bindparam("now"),
    entries.c.requested_date == sa.cast(_LOCAL, sa.Date),
    sa.or_(entries.c.requested_time.is_(None), entries.c.requested_time == sa.func.to_char(_LOCAL, "HH24:MI")))
    .order_by(entries.c.priority.desc(), entries.c.created_at, entries.c.id)
    .limit(sa.bindparam("limit", type_=sa.Integer)).with_for_update(skip_locked=True))


async def _fits(conn, ctx, entry, slot, duration: int) -> bool:
    """Whether the core would book this entry at the slot now (rules, every plugin's limits,
    the other holds): asked as availability of that one day."""
    tz = ZoneInfo(entry["time_zone"])
    day = slot["starts_at"].astimezone(tz).date()
    try:
        free = await bookings.availability(
            conn, ctx, Principal("customer", str(entry["customer_id"])), start_day=day, end_day=day,
            party_size=entry["party_size"], time_zone=entry["time_zone"], duration_minutes=duration,
            zip_code=entry["zip_code"] or slot.get("zip_code"))
    except Problem:
        return False
    return any(s.starts_at == slot["starts_at"] for s in free.slots)


async def offer_slot(conn, ctx, slot) -> dict[str, Any] | None:
    """Hold a freed place (``starts_at``, ``ends_at``, ``time_zone``, ``pools``) for the best
    waiting entry it fits, tell its customer, and answer the offer (None: nobody fits)."""
    await conn.run(_EXCLUSIVE, {"keys": day_keys(slot["starts_at"], slot["ends_at"])})
    pools = slot["pools"] or []
    await bookings.lock_slots(conn, ctx, pools, slot["starts_at"], slot["ends_at"])
    settings, now = settings_of(ctx), utcnow()
    duration = int((slot["ends_at"] - slot["starts_at"]).total_seconds() // 60)
    for entry in await conn.fetch_all(_CANDIDATES, {"start": slot["starts_at"], "now": now,
                                                    "limit": settings.candidates}):
        if await _fits(conn, ctx, entry, slot, duration):
            break
    else:
        return None
    offer = await conn.fetch_one(sa.insert(offers).values(
        id=uuid.uuid4(), entry_id=entry["id"], customer_id=entry["customer_id"], freed_by=slot.get("freed_by"),
        starts_at=slot["starts_at"], ends_at=slot["ends_at"], time_zone=slot["time_zone"], pools=pools,
        expires_at=min(now + timedelta(minutes=settings.hold_minutes), slot["starts_at"])).returning(offers))
    await bookings.hold(conn, ctx, id=offer["id"], owner="waitlist", customer_id=entry["customer_id"], pools=pools,
                        starts_at=offer["starts_at"], ends_at=offer["ends_at"], expires_at=offer["expires_at"])
    await _set_entry(conn, entry["id"], status="offered")
    await publish(conn, ctx, "waitlist.offered", {
        "entry_id": str(entry["id"]), "offer_id": str(offer["id"]), "customer_id": str(entry["customer_id"]),
        "starts_at": offer["starts_at"].isoformat(), "expires_at": offer["expires_at"].isoformat()})
    await _notify(conn, ctx, entry, offer)
    return offer


async def _notify(conn, ctx, entry, offer) -> None:
    """SMS and email through comms (consent, opt-outs and history apply; a refusal of one
    channel does not stop the other)."""
    tz = ZoneInfo(offer["time_zone"])
    text = (f"A place opened up on {offer['starts_at'].astimezone(tz):%a %b %d at %I:%M %p} for your party of "
            f"{entry['party_size']}. It is held for you until {offer['expires_at'].astimezone(tz):%I:%M %p %Z}: "
            f"accept it to book (waitlist entry {entry['id']}).")
    key = f"waitlist:{offer['id']}"
    await ctx.service(Messaging, caller="waitlist").send_many(conn, [
        {"channel": "sms", "customer_id": entry["customer_id"], "body": text, "idempotency_key": f"{key}:sms"},
        {"channel": "email", "customer_id": entry["customer_id"], "subject": "A place opened up for you",
         "text": text, "idempotency_key": f"{key}:email"}])


_BOOKING = sa.select(tables.bookings).where(tables.bookings.c.id == sa.bindparam("booking_id", type_=sa.UUID))
_OFFERED_FOR = sa.select(offers.c.id).where(offers.c.freed_by == sa.bindparam("booking_id", type_=sa.UUID)).limit(1)


async def on_booking_cancelled(conn, event, ctx) -> None:
    """A cancelled booking frees its place: offer it to the best entry waiting for it."""
    booking_id = uuid.UUID(event["payload"]["booking_id"])
    b = await conn.fetch_one(_BOOKING, {"booking_id": booking_id})
    if b is None or b["status"] != "cancelled" or b["starts_at"] <= utcnow():
        return
    if await conn.scalar(_OFFERED_FOR, {"booking_id": booking_id}) is not None:
        return
    await offer_slot(conn, ctx, {"starts_at": b["starts_at"], "time_zone": b["time_zone"], "pools": b["pools"],
                                 "ends_at": b["starts_at"] + timedelta(minutes=b["duration_minutes"]),
                                 "zip_code": b["zip_code"], "freed_by": booking_id})


_EXPIRE = (sa.update(entries).where(entries.c.status == "active", entries.c.expires_at <= sa.bindparam("now"))
           .values(status="expired", updated_at=sa.func.now()))


async def lapse_due(ctx, *, now: datetime | None = None) -> int:
    """The poller: offers past their time lapse and their place goes to the next entry;
    entries past ``expires_at`` expire."""
    now = now or utcnow()
    async with ctx.db.transaction() as conn:
        due = await claim_due(conn, offers, due_column="expires_at", pending="offered", limit=100, now=now)
        for o in due:
            await _settle(conn, o["id"], "lapsed")
            await conn.run(sa.update(entries).where(entries.c.id == o["entry_id"], entries.c.status == "offered")
                           .values(status="lapsed", updated_at=sa.func.now()))
        for o in due:
            if o["starts_at"] > now:
                await offer_slot(conn, ctx, o)
        expired = await conn.run(_EXPIRE, {"now": now})
    return len(due) + expired


async def export_sections(conn, customer_id: uuid.UUID) -> dict[str, list[dict]] | None:
    rows = await conn.fetch_all(sa.select(entries).where(entries.c.customer_id == customer_id))
    held = await conn.fetch_all(sa.select(offers).where(offers.c.customer_id == customer_id))
    return {"waitlist.entries": [dict(r) for r in rows], "waitlist.offers": [dict(r) for r in held]}
