"""Recurring series: rule parsing, materialising instances through the core's create path,
and "this and following" updates and cancellation."""
from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from dateutil.rrule import rrule, rrulestr

from myhibachi.core import (Principal, Problem, bookings, check_owner_or, conflict, fetch_page, invalid, not_found,
                            reseal, tables, utcnow, vault)
from myhibachi.plugins.recurring.models import instances, patterns

ACTIVE = ("pending", "confirmed")
SEALED = ("address", "special_requests")


# --- sealing: a pattern keeps the address and requests its bookings are made with ----------


def _aad(pattern_id: uuid.UUID, field: str) -> str:
    return f"recurring_event_patterns.{field}:{pattern_id}"


def sealed(ctx, pattern_id: uuid.UUID, values: dict) -> dict:
    """The stored columns of a pattern's plain fields, ``values`` with its sealed ones replaced
    (all of them, under the current key: a row's fields share its key_id)."""
    v = vault(ctx)
    out = {k: value for k, value in values.items() if k not in SEALED}
    out.update({f"{f}_enc": v.encrypt(values[f], _aad(pattern_id, f)) for f in SEALED}, key_id=v.current_id)
    return out


def opened(ctx, row: dict) -> dict:
    """A stored pattern as plain data (in place)."""
    v, key_id = vault(ctx), row.pop("key_id")
    for f in SEALED:
        row[f] = v.decrypt(row.pop(f"{f}_enc"), key_id, _aad(row["id"], f))
    return row


def parse_rule(text: str, start: date, at, max_count: int) -> rrule:
    """The rule anchored at the series' first local start; unbounded rules are refused."""
    try:
        rule = rrulestr(text.removeprefix("RRULE:"), dtstart=datetime.combine(start, at))
    except (ValueError, TypeError) as exc:
        raise invalid("recurrence_rule", f"not a valid RRULE: {exc}") from None
    if not isinstance(rule, rrule):
        raise invalid("recurrence_rule", "one RRULE only")
    if rule._count is None and rule._until is None:
        raise invalid("recurrence_rule", "an RRULE needs COUNT or UNTIL")
    if rule._count is not None and rule._count > max_count:
        raise invalid("recurrence_rule", f"COUNT may be at most {max_count}")
    return rule


def check_zone(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise invalid("time_zone", "not an IANA time zone") from None


def _principal(customer_id: uuid.UUID) -> Principal:
    return Principal("customer", str(customer_id))


async def materialise(conn, ctx, principal: Principal, p: dict, until: date, today: date) -> list[dict]:
    """Create every occurrence after ``materialised_until`` up to ``until`` through the core's
    create path (rules, capacity, price, events), each in its own savepoint; an occurrence the
    core refuses is answered as a conflict. Past occurrences are skipped."""
    settings = ctx.plugins.get("recurring").settings
    rule = parse_rule(p["recurrence_rule"], p["start_date"], p["local_time"], settings.max_count)
    first = max(p["materialised_until"] + timedelta(days=1), today)
    found, taken = [], set(await conn.scalars(_TAKEN, {"pattern_id": p["id"]}))
    for local in rule.between(datetime.combine(first, datetime.min.time()),
                              datetime.combine(until, datetime.max.time()), inc=True):
        if local.date() in taken:  # kept through an update: completed, or already made
            continue
        # a naive wall-clock start read in the series' zone: 7 pm stays 7 pm across DST
        data = ctx.models.booking_create(
            starts_at=local, time_zone=p["time_zone"], adults=p["adults"], children=p["children"],
            address=p["address"], zip_code=p["zip_code"], notes=p["special_requests"],
            customer_id=p["customer_id"] if principal.is_staff else None)
        try:
            async with conn.savepoint():
                row = await bookings.create_booking(conn, ctx, principal, data)
        except Problem as problem:
            found.append({"date": local.date().isoformat(), "detail": problem.detail or problem.title})
            continue
        await conn.run(sa.insert(instances).values(pattern_id=p["id"], occurrence_date=local.date(),
                                                   booking_id=row["id"]))
    await conn.run(sa.update(patterns).where(patterns.c.id == p["id"]).values(
        materialised_until=max(until, p["materialised_until"]),
        conflicts=sa.func.coalesce(patterns.c.conflicts, sa.text("'[]'::jsonb")).op("||")(
            sa.cast(found, patterns.c.conflicts.type))))
    return found


async def create_pattern(conn, ctx, principal: Principal, body) -> dict:
    settings = ctx.plugins.get("recurring").settings
    check_zone(body.time_zone)
    parse_rule(body.recurrence_rule, body.start_date, body.local_time, settings.max_count)
    customer_id = bookings.own_id(principal)
    today = utcnow().date()
    pattern_id = uuid.uuid4()
    p = opened(ctx, await conn.fetch_one(sa.insert(patterns).values(
        id=pattern_id, customer_id=customer_id, materialised_until=body.start_date - timedelta(days=1),
        **sealed(ctx, pattern_id, body.model_dump(exclude={"skip_conflicts"}))).returning(patterns)))
    found = await materialise(conn, ctx, principal, p, today + timedelta(days=settings.horizon_days), today)
    if found and not body.skip_conflicts:
        raise conflict(f"{len(found)} occurrence(s) cannot be booked", conflicts=found)
    return await _get(conn, ctx, p["id"])


async def _get(conn, ctx, pattern_id: uuid.UUID, *, for_update: bool = False) -> dict:
    q = sa.select(patterns).where(patterns.c.id == pattern_id)
    row = await conn.fetch_one(q.with_for_update() if for_update else q)
    if row is None:
        raise not_found("recurring pattern")
    return opened(ctx, row)


async def pattern_for(conn, ctx, principal: Principal, pattern_id: uuid.UUID, permission: str, *,
                      for_update: bool = False) -> dict:
    row = await _get(conn, ctx, pattern_id, for_update=for_update)
    check_owner_or(principal, row["customer_id"], permission, "recurring pattern")
    return row


_FUTURE = (sa.select(instances.c.booking_id, instances.c.occurrence_date)
           .join(tables.bookings, tables.bookings.c.id == instances.c.booking_id)
           .where(instances.c.pattern_id == sa.bindparam("pattern_id"),
                  tables.bookings.c.starts_at > sa.bindparam("now"),
                  tables.bookings.c.status.in_(ACTIVE)))


# cancelled instances are forgotten, so their dates are made again from the changed pattern
_FORGET = sa.delete(instances).where(instances.c.pattern_id == sa.bindparam("pattern_id"),
                                     instances.c.booking_id == sa.func.any(sa.bindparam("ids", type_=ARRAY(sa.UUID))))
_TAKEN = sa.select(instances.c.occurrence_date).where(instances.c.pattern_id == sa.bindparam("pattern_id"))


async def _cancel_future(conn, ctx, principal: Principal, p: dict, reason: str) -> list[date]:
    """Cancel the instances still ahead (their reminders follow the booking.cancelled event)."""
    rows = await conn.fetch_all(_FUTURE, {"pattern_id": p["id"], "now": utcnow()})
    for r in rows:
        await bookings.transition(conn, ctx, principal, r["booking_id"], "cancelled", reason=reason)
    await conn.run(_FORGET, {"pattern_id": p["id"], "ids": [r["booking_id"] for r in rows]})
    return [r["occurrence_date"] for r in rows]


async def update_pattern(conn, ctx, principal: Principal, p: dict, body) -> dict:
    """This and following: future instances are cancelled and made again from the new pattern."""
    if p["status"] != "active":
        raise conflict("the series is cancelled")
    changes = body.model_dump(exclude_unset=True, exclude={"skip_conflicts"})
    merged = {**p, **changes}
    parse_rule(merged["recurrence_rule"], merged["start_date"], merged["local_time"],
               ctx.plugins.get("recurring").settings.max_count)
    await _cancel_future(conn, ctx, principal, p, "recurring series updated")
    today = utcnow().date()
    # occurrences from today are made again (those already past stay as they are)
    stored = sealed(ctx, p["id"], {**changes, **{f: merged[f] for f in SEALED}})
    p = opened(ctx, await conn.fetch_one(sa.update(patterns).where(patterns.c.id == p["id"]).values(
        **stored, conflicts=[], materialised_until=today - timedelta(days=1)).returning(patterns)))
    horizon = ctx.plugins.get("recurring").settings.horizon_days
    found = await materialise(conn, ctx, principal, p, today + timedelta(days=horizon), today)
    if found and not body.skip_conflicts:
        raise conflict(f"{len(found)} occurrence(s) cannot be booked", conflicts=found)
    return await _get(conn, ctx, p["id"])


async def cancel_pattern(conn, ctx, principal: Principal, p: dict) -> dict:
    if p["status"] == "active":
        await _cancel_future(conn, ctx, principal, p, "recurring series cancelled")
        await conn.run(sa.update(patterns).where(patterns.c.id == p["id"]).values(status="cancelled"))
    return await _get(conn, ctx, p["id"])


async def list_instances(conn, pattern_id: uuid.UUID, *, limit: int, cursor: str | None) -> dict:
    b = tables.bookings
    query = (sa.select(instances.c.occurrence_date, instances.c.booking_id, b.c.starts_at, b.c.status)
             .join(b, b.c.id == instances.c.booking_id).where(instances.c.pattern_id == pattern_id))
    # paged by start (the occurrences' order; a cursor carries datetimes, not dates)
    rows, nxt = await fetch_page(conn, query, (b.c.starts_at, instances.c.booking_id), limit=limit, cursor=cursor,
                                 descending=False)
    return {"items": rows, "next_cursor": nxt}


_DUE = sa.select(patterns).where(patterns.c.status == "active",
                                 patterns.c.materialised_until < sa.bindparam("horizon")).limit(200)


async def extend_horizon(conn, ctx) -> int:
    """The periodic job: roll every active series forward to the horizon, so an indefinite
    series keeps a bounded number of rows."""
    today = utcnow().date()
    horizon = today + timedelta(days=ctx.plugins.get("recurring").settings.horizon_days)
    due = await conn.fetch_all(_DUE.with_for_update(skip_locked=True), {"horizon": horizon})
    for p in due:
        await materialise(conn, ctx, _principal(p["customer_id"]), opened(ctx, p), horizon, today)
    return len(due)


async def rotate_keys(conn, ctx, *, batch: int) -> int:
    """Every pattern's address and requests sealed again under the current PII key."""
    return await reseal(conn, ctx, patterns, lambda row, field: _aad(row["id"], field), batch=batch)
