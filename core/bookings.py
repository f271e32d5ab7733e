"""Bookings: the rules, availability, quotes and the booking lifecycle, callable without HTTP.

A booking is an event at the customer's address. Start times lie on a grid: every
``booking_slot_minutes`` from the opening time, in the event's own time zone, and the event
ends by the closing time. A chef team is busy for the whole event, so a booking occupies
every grid slot its time overlaps; ``booking_capacity`` events may share a slot. Two
overlapping bookings always share at least one slot, so locking the slots (rows of
``booking_slots``, in key order) serialises every pair that could exceed the capacity.

Availability and create go through the same functions (``time_problem``, ``party_problem``,
``room``, ``Busy``, the ``validate_booking`` and ``booking_limits`` hooks), so a slot offered
is a slot create accepts.
"""
from __future__ import annotations

import bisect
import functools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from myhibachi.core import events
from myhibachi.core.auth import Principal, check_owner_or
from myhibachi.core.booking_schemas import (  # noqa: F401 - the service's models, reached as bookings.X
    Availability, Booking, BookingCreate, BookingFields, BookingPage, BookingUpdate, CancelRequest, PriceLine, Quote,
    QuoteRequest, Slot, Text, wall_clock, zone)
from myhibachi.core.crypto import reseal, vault
from myhibachi.core.db import utcnow
from myhibachi.core.errors import Problem, conflict, invalid, not_found
from myhibachi.core.fields import inputs_of, plain_inputs
from myhibachi.core.hookspecs import BookingView, Hooks, Refusal, SlotLimit
from myhibachi.core.models import booking_holds, bookings, customers
from myhibachi.core.pagination import DEFAULT_LIMIT, decode_keys, page_of

UTC = timezone.utc
STATUSES = ("pending", "confirmed", "cancelled", "completed")
ACTIVE = ("pending", "confirmed")
TRANSITIONS: dict[str, set[str]] = {
    "pending": {"confirmed", "cancelled"},
    "confirmed": {"completed", "cancelled"},
    "cancelled": set(),
    "completed": set(),
}
MAX_AVAILABILITY_DAYS = 31


# --- rules -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rules:
    min_party: int
    max_party: int
    lead_time: timedelta
    max_advance: timedelta
    open: time
    close: time
    slot: timedelta
    capacity: int
    default_duration: int
    max_duration: int
    default_time_zone: str
    price_adult: int
    price_child: int
    minimum_order: int
    currency: str

    @classmethod
    def of(cls, s) -> "Rules":
        return cls(
            min_party=s.booking_min_party_size, max_party=s.booking_max_party_size,
            lead_time=timedelta(hours=s.booking_lead_time_hours),
            max_advance=timedelta(days=s.booking_max_advance_days),
            open=s.business_open, close=s.business_close, slot=timedelta(minutes=s.booking_slot_minutes),
            capacity=s.booking_capacity, default_duration=s.booking_default_duration_minutes,
            max_duration=s.booking_max_duration_minutes, default_time_zone=s.default_time_zone,
            price_adult=s.price_adult_cents, price_child=s.price_child_cents,
            minimum_order=s.minimum_order_cents, currency=s.currency.upper(),
        )


def rules_of(ctx) -> Rules:
    """The rules of the context's settings, built once per settings object."""
    cached = ctx.extra.get("booking_rules")
    if cached is None or cached[0] is not ctx.settings:
        cached = (ctx.settings, Rules.of(ctx.settings))
        ctx.extra["booking_rules"] = cached
    return cached[1]


def to_utc(local: datetime, tz: ZoneInfo) -> datetime | None:
    """A wall-clock time in ``tz`` as UTC; None when the clock skips it (a DST gap)."""
    aware = local.replace(tzinfo=tz)
    utc = aware.astimezone(UTC)
    if utc.astimezone(tz).replace(tzinfo=None) != local:
        return None
    return utc


def resolve_start(value: datetime, tz: ZoneInfo, field: str = "starts_at") -> datetime:
    try:
        if value.tzinfo is None:
            start = to_utc(value, tz)
            if start is None:
                raise invalid(field, f"{value.isoformat()} does not exist in {tz.key} (the clock skips it)")
        else:
            start = value.astimezone(UTC)
            start.astimezone(tz)
    except (OverflowError, ValueError):
        raise invalid(field, "is out of range") from None
    if start.second or start.microsecond:
        raise invalid(field, "must be on a whole minute")
    return start


def closing_time(rules: Rules, day: date, tz: ZoneInfo) -> datetime:
    """When a local day's business hours end, in UTC (a closing time the clock skips counts
    as the instant after the gap)."""
    local = datetime.combine(day, rules.close)
    return to_utc(local, tz) or local.replace(tzinfo=tz).astimezone(UTC)


def day_grid(rules: Rules, day: date, tz: ZoneInfo) -> list[datetime]:
    """The UTC start of every slot of a local day, from opening to closing."""
    t = datetime.combine(day, rules.open)
    end = datetime.combine(day, rules.close)
    offset = t.replace(tzinfo=tz).utcoffset()
    out = []
    if offset == end.replace(tzinfo=tz).utcoffset():
        # No clock change between opening and closing (zones change at most once a day):
        # one offset for every slot, without converting each one both ways.
        while t < end:
            out.append((t - offset).replace(tzinfo=UTC))
            t += rules.slot
        return out
    while t < end:
        utc = to_utc(t, tz)
        if utc is not None:
            out.append(utc)
        t += rules.slot
    return out


def slot_key(start: datetime) -> str:
    return start.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def covered(rules: Rules, start: datetime, duration: int) -> list[datetime]:
    """The grid slots (UTC starts) a booking starting on the grid keeps busy."""
    end = start + timedelta(minutes=duration)
    out = []
    s = start
    while s < end:
        out.append(s)
        s += rules.slot
    return out


def time_problem(rules: Rules, start: datetime, duration: int, tz: ZoneInfo, now: datetime) -> str | None:
    """Why an event cannot start at ``start`` (UTC) for ``duration`` minutes, or None."""
    if start < now + rules.lead_time:
        return f"must be at least {rules.lead_time.total_seconds() / 3600:g} hours ahead"
    if start > now + rules.max_advance:
        return f"must be at most {rules.max_advance.days} days ahead"
    if duration > rules.max_duration:
        return f"events last at most {rules.max_duration} minutes"
    local = start.astimezone(tz).replace(tzinfo=None)
    opening = datetime.combine(local.date(), rules.open)
    closing = closing_time(rules, local.date(), tz)
    if local < opening or (local - opening) % rules.slot:
        return (f"must be on a {int(rules.slot.total_seconds() // 60)}-minute slot from {rules.open:%H:%M} "
                f"({_hours(rules, tz)})")
    if start + timedelta(minutes=duration) > closing:
        return f"the event must end by {rules.close:%H:%M} ({_hours(rules, tz)})"
    return None


def _hours(rules: Rules, tz: ZoneInfo) -> str:
    return f"{rules.open:%H:%M}-{rules.close:%H:%M} {tz.key}"


def bookable_starts(rules: Rules, day: date, tz: ZoneInfo, duration: int, now: datetime) -> list[datetime]:
    """The grid starts of a local day that ``time_problem`` accepts, with its per-day parts
    worked out once (grid starts are on a slot by construction)."""
    earliest, latest = now + rules.lead_time, now + rules.max_advance
    last = closing_time(rules, day, tz) - timedelta(minutes=duration)
    return [s for s in day_grid(rules, day, tz) if earliest <= s <= latest and s <= last]


def party_problem(rules: Rules, adults: int, children: int) -> tuple[str, str] | None:
    size = adults + children
    if size < rules.min_party:
        return "adults", f"a party has at least {rules.min_party} guests (adults + children)"
    if size > rules.max_party:
        return "adults", f"a party has at most {rules.max_party} guests (adults + children)"
    if adults < 1:
        return "adults", "at least one adult attends"
    return None


class Busy:
    """Active bookings as intervals, counted per slot by binary search (availability asks
    for every slot of up to 31 days, create for the few its event covers)."""

    def __init__(self, starts: list[datetime], ends: list[datetime]) -> None:
        self.starts, self.ends = starts, ends  # each sorted

    def occupancy(self, slot: datetime, length: timedelta) -> int:
        """Bookings overlapping [slot, slot + length): started before its end, not ended by its start."""
        return bisect.bisect_left(self.starts, slot + length) - bisect.bisect_right(self.ends, slot)

    def used(self, rules: Rules, slots: list[datetime]) -> int:
        return max((self.occupancy(s, rules.slot) for s in slots), default=0)


# The busy arrays (bookings and holds) of each pool (None: every booking), the definition of
# busy being the database's booking_busy (core migrations core_booking_busy and
# core_booking_holds); with slot keys, the slots' locks are taken first, in the same round trip.
_BUSY = sa.text("SELECT p.pool, b.starts, b.ends FROM unnest(CAST(:pools AS text[])) AS p(pool), LATERAL "
                "booking_busy(CAST(:statuses AS text[]), :since, :start, :end, CAST(:exclude AS uuid), p.pool, "
                "CAST(:customer AS uuid)) AS b")
_LOCKED_BUSY = sa.text("SELECT * FROM booking_busy_locked(CAST(:keys AS text[]), CAST(:statuses AS text[]), :since, "
                       ":start, :end, CAST(:exclude AS uuid), CAST(:pools AS text[]), CAST(:customer AS uuid))")
_LOCK = sa.text("SELECT booking_lock_slots(CAST(:keys AS text[]))")


def _slot_keys(pools: Sequence[str], slots: list[datetime]) -> list[str]:
    """The booking_slots rows a booking of these pools takes, in the one global order (so two
    transactions never wait on each other in a cycle)."""
    return sorted(f"{pool}|{slot_key(s)}" for pool in pools for s in slots) or [slot_key(s) for s in slots]


async def lock_slots(conn, ctx, pools: Sequence[str], start: datetime, end: datetime) -> None:
    """Take the slot locks a booking of [start, end) drawing on ``pools`` takes: a create or a
    move onto it waits for this transaction, then counts what it committed."""
    slots = covered(rules_of(ctx), start, int((end - start).total_seconds() // 60))
    await conn.run(_LOCK, {"keys": _slot_keys(pools, slots)})


async def hold(conn, ctx, *, id: uuid.UUID, owner: str, customer_id: uuid.UUID | None, pools: Sequence[str],
               starts_at: datetime, ends_at: datetime, expires_at: datetime) -> None:
    """Hold a place in ``pools`` over [starts_at, ends_at) until ``expires_at`` (or ``release``):
    it counts like an active booking in availability and create, except for ``customer_id``,
    whose place it is. Takes the slots' locks first, so a create waiting on them sees it."""
    await lock_slots(conn, ctx, pools, starts_at, ends_at)
    await conn.run(sa.insert(booking_holds).values(
        id=id, owner=owner, customer_id=customer_id, pools=list(pools), starts_at=starts_at, ends_at=ends_at,
        expires_at=expires_at))


async def release(conn, id: uuid.UUID) -> None:
    """The held place of ``hold(id=...)`` no longer counts (accepted, withdrawn or lapsed)."""
    await conn.run(sa.delete(booking_holds).where(booking_holds.c.id == id))


# --- hooks -------------------------------------------------------------------------------


def view_of(b: Mapping[str, Any], *, stored: bool = False, inputs: Mapping[str, Any] = MappingProxyType({})
            ) -> BookingView:
    """The booking (a draft or a row) as the hooks see it."""
    start = b["starts_at"]
    return BookingView(
        id=b.get("id"), customer_id=b.get("customer_id"), status=b.get("status", "pending"),
        starts_at=start, ends_at=start + timedelta(minutes=b["duration_minutes"]) if start else None,
        local_start=wall_clock(start, zone(b["time_zone"])) if start else None, time_zone=b["time_zone"],
        duration_minutes=b["duration_minutes"], adults=b["adults"], children=b["children"],
        party_size=b["adults"] + b["children"], address=b.get("address") or "", zip_code=b.get("zip_code"),
        menu=b.get("menu"), notes=b.get("notes"), stored=stored, price_lines=tuple(b.get("price_lines") or ()),
        total_cents=b.get("total_cents") or 0, inputs=inputs)


def problem_of(refused: Refusal, where: str = "body") -> Problem:
    """A plugin's refusal as a problem naming its field where the request gave it: in a
    body at its path (``body.locations.location_id``), among the query's flat parameters by
    its name (``query.location_id``)."""
    status = 409 if refused.status == 409 else 422
    field = refused.field and (f"body.{refused.field}" if where == "body" else f"query.{refused.field.rsplit('.', 1)[-1]}")
    named = {"errors": [{"field": field, "message": refused.reason}]} if field else {}
    return Problem(status, "Conflict" if status == 409 else "Booking refused", refused.reason,
                   kind="booking-refused", reason=refused.reason, **named)


async def refusal(hooks: Hooks, conn, view: BookingView, where: str = "body") -> Problem | None:
    """The first enabled plugin's refusal of a booking as a problem (422, or 409 on request)."""
    for refused in await hooks.validate_booking(booking=view, conn=conn):
        return problem_of(refused, where)
    return None


async def limits_of(hooks: Hooks, conn, view: BookingView, starts: tuple[datetime, ...]) -> list[SlotLimit]:
    limits = await hooks.booking_limits(booking=view, starts=starts, conn=conn)
    for limit in limits:
        if len(limit.capacity) != len(starts):
            raise RuntimeError(f"a booking_limits answer has {len(limit.capacity)} capacities for {len(starts)} starts")
    return limits


async def busy_of(conn, limits: list[SlotLimit], start: datetime, end: datetime, exclude: uuid.UUID | None = None,
                  customer: uuid.UUID | None = None, lock: list[str] | None = None) -> dict[str | None, Busy]:
    """The active bookings and holds (but ``customer``'s) of each limit's pool overlapping
    [start, end), in one query; with no pool, all of them (under the key None). With
    ``lock``, the slot keys' locks are taken first and the bookings read after them."""
    # An event ends within its own day, so one day back bounds the index scan.
    params = {"pools": sorted({limit.pool for limit in limits if limit.pool is not None}) or [None],
              "statuses": list(ACTIVE), "since": start - timedelta(days=1), "start": start, "end": end,
              "exclude": exclude, "customer": customer}
    rows = await (conn.fetch_all(_BUSY, params) if lock is None else
                  conn.fetch_all(_LOCKED_BUSY, {**params, "keys": lock}))
    return {row["pool"]: Busy(row["starts"] or [], row["ends"] or []) for row in rows}


def room(rules: Rules, limits: list[SlotLimit], busy: dict[str | None, Busy], k: int,
         slots: list[datetime]) -> tuple[int, int] | Refusal:
    """(remaining, capacity) of the tightest limit at the k-th start, or a plugin's refusal."""
    tightest = None
    for limit in limits:
        capacity = limit.capacity[k]
        if isinstance(capacity, Refusal):
            return capacity
        if limit.pool is not None:
            left = capacity - busy[limit.pool].used(rules, slots)
            if tightest is None or left < tightest[0]:
                tightest = (left, capacity)
    if tightest is None:
        return rules.capacity - busy[None].used(rules, slots), rules.capacity
    return tightest


async def price(hooks: Hooks, conn, view: BookingView, rules: Rules) -> tuple[list[dict], int]:
    """Price lines (the base from settings, then every enabled plugin's) and the total in cents.

    A total below zero gets a last line bringing it to zero, so lines always sum to the total.
    """
    adults, children = view.adults, view.children
    lines = [{"code": "base.adults", "label": f"{adults} adults", "amount_cents": adults * rules.price_adult}]
    if children:
        lines.append({"code": "base.children", "label": f"{children} children",
                      "amount_cents": children * rules.price_child})
    subtotal = sum(line["amount_cents"] for line in lines)
    if subtotal < rules.minimum_order:
        lines.append({"code": "base.minimum", "label": "minimum order",
                      "amount_cents": rules.minimum_order - subtotal})
    for result in await hooks.price_booking(booking=view, lines=tuple(dict(line) for line in lines), conn=conn):
        lines.extend(PriceLine.model_validate(line).model_dump() for line in result)
    total = sum(line["amount_cents"] for line in lines)
    if total < 0:
        lines.append({"code": "adjustment.floor", "label": "a total is never below zero", "amount_cents": -total})
        total = 0
    return lines, total


# --- sealing -----------------------------------------------------------------------------

# The customer's own words and where they live, sealed at rest as a customer's PII is (see
# core.crypto): each bound to its booking and field, so a ciphertext copied to another
# booking or column does not open. Events mask the same fields (``_PII``).
SEALED = ("address", "menu", "notes")
_ENC = tuple((f, f"{f}_enc") for f in SEALED)
# A booking's columns but the sealed ones: what a write answers, its plain values being known.
_OPEN_COLUMNS = tuple(c for c in bookings.c if c.name not in {enc for _, enc in _ENC} | {"key_id"})


def _aad(booking_id: uuid.UUID, field: str) -> str:
    return f"bookings.{field}:{booking_id}"


def sealed(ctx, booking_id: uuid.UUID, values: Mapping[str, str | None]) -> dict[str, Any]:
    """The stored columns (``address_enc``, ``menu_enc``, ``notes_enc``, ``key_id``) of a
    booking's plain address, menu and notes, all under the current key."""
    v = vault(ctx)
    columns: dict[str, Any] = {enc: None if values.get(f) is None else v.encrypt(values[f], _aad(booking_id, f))
                               for f, enc in _ENC}
    columns["key_id"] = v.current_id
    return columns


def opened(ctx, row: dict[str, Any]) -> dict[str, Any]:
    """A stored booking row as plain data, changed in place: each sealed column it carries
    opened under its field's name (``address_enc`` -> ``address``), ``key_id`` dropped. Every
    read of booking rows goes through here (a plugin selecting ``tables.bookings`` columns
    itself too: select ``id``, ``key_id`` and the ``<field>_enc`` columns it needs)."""
    v = vault(ctx)
    key_id = row.pop("key_id", None)
    for field, enc in _ENC:
        if enc in row:
            token = row.pop(enc)
            row[field] = None if token is None else v.decrypt(token, key_id, _aad(row["id"], field))
    return row


def _with_plain(row: dict[str, Any], plain: Mapping[str, Any]) -> dict[str, Any]:
    """A row written without answering its sealed columns, with the plain values written."""
    for field in SEALED:
        row[field] = plain[field]
    return row


async def rotate_keys(conn, ctx, *, batch: int = 500) -> int:
    """Seal every booking row under the current key again; returns how many rows changed."""
    return await reseal(conn, ctx, bookings, lambda row, field: _aad(row["id"], field), batch=batch)


# --- service -----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _actor(principal: Principal) -> str:
    return principal.flag_context()["userId"]


def own_id(principal: Principal) -> uuid.UUID:
    """The signed-in customer's id (a token naming no valid id is refused)."""
    try:
        return uuid.UUID(principal.id)
    except (TypeError, ValueError):
        raise Problem(401, "Unauthorized", "the token names no customer", kind="invalid-token",
                      headers={"WWW-Authenticate": "Bearer"}) from None


_CUSTOMER_STATUS = sa.select(customers.c.status).where(customers.c.id == sa.bindparam("customer_id"))


async def _customer_for(conn, principal: Principal, requested: uuid.UUID | None) -> uuid.UUID:
    if principal.kind == "customer":
        own = own_id(principal)
        if requested is not None and requested != own:
            raise Problem(403, "Forbidden", "customers book for themselves only", kind="forbidden",
                          permission="bookings.write")
        found = await conn.fetch_one(_CUSTOMER_STATUS, {"customer_id": own})
        if found is None or found["status"] != "active":
            raise Problem(403, "Forbidden", "this customer account cannot book", kind="forbidden")
        return own
    if not principal.can("bookings.write"):
        raise Problem(403, "Forbidden", "missing permission bookings.write", kind="forbidden",
                      permission="bookings.write")
    if requested is None:
        raise invalid("customer_id", "staff name the customer the booking is for")
    found = await conn.fetch_one(sa.select(customers.c.id).where(customers.c.id == requested))
    if found is None:
        raise invalid("customer_id", "no such customer")
    return requested


def _prospective(data: BookingFields, rules: Rules) -> dict[str, Any]:
    tz_name = data.time_zone or rules.default_time_zone
    tz = zone(tz_name)
    start = resolve_start(data.starts_at, tz) if data.starts_at is not None else None
    return {
        "starts_at": start, "time_zone": tz_name,
        "duration_minutes": data.duration_minutes or rules.default_duration,
        "adults": data.adults, "children": data.children, "address": data.address,
        "zip_code": data.zip_code, "menu": data.menu, "notes": data.notes,
    }


def _check_party(rules: Rules, b: dict[str, Any]) -> None:
    problem = party_problem(rules, b["adults"], b["children"])
    if problem:
        raise invalid(*problem)


def _check_time(rules: Rules, b: dict[str, Any], now: datetime) -> None:
    reason = time_problem(rules, b["starts_at"], b["duration_minutes"], zone(b["time_zone"]), now)
    if reason:
        field = "duration_minutes" if reason.startswith("events last") else "starts_at"
        raise invalid(field, reason)


async def _lock_and_check_capacity(hooks: Hooks, conn, rules: Rules, view: BookingView,
                                   exclude: uuid.UUID | None = None) -> list[str]:
    """Take the booking's slots' locks in every pool its limits name (one global key order,
    so two creates never wait on each other in a cycle), check each limit has room, and
    answer the pools the booking then draws on."""
    limits = await limits_of(hooks, conn, view, (view.starts_at,))
    pools = sorted({limit.pool for limit in limits if limit.pool is not None})
    slots = covered(rules, view.starts_at, view.duration_minutes)
    busy = await busy_of(conn, limits, slots[0], slots[-1] + rules.slot, exclude, view.customer_id,
                         lock=_slot_keys(pools, slots))
    free = room(rules, limits, busy, 0, slots)
    if isinstance(free, Refusal):
        raise problem_of(free)
    if free[0] <= 0:
        raise conflict(f"no chef team is free at {view.local_start} {view.time_zone}", slot=slot_key(view.starts_at))
    return pools


_INSERT = sa.insert(bookings).values({name: sa.bindparam(name, type_=bookings.c[name].type) for name in (
    "id", "customer_id", "starts_at", "time_zone", "duration_minutes", "party_size", "adults", "children",
    "address_enc", "zip_code", "menu_enc", "notes_enc", "key_id", "status", "price_lines", "total_cents", "currency",
    "slot_key", "pools",
)}).returning(*_OPEN_COLUMNS)


async def create_booking(conn, ctx, principal: Principal, data: BookingCreate, *,
                         now: datetime | None = None) -> dict[str, Any]:
    """Validate, price and insert a booking under its slots' locks; publishes booking.created."""
    rules = rules_of(ctx)
    now = now or utcnow()
    hooks = ctx.hooks(principal.flag_context())
    customer_id = await _customer_for(conn, principal, data.customer_id)
    b = _prospective(data, rules)
    _check_party(rules, b)
    _check_time(rules, b, now)
    b["id"], b["customer_id"] = uuid.uuid4(), customer_id
    inputs = inputs_of(data, ctx.models.owners.get("booking_create", ()))
    view = view_of(b, inputs=inputs)
    problem = await refusal(hooks, conn, view)
    if problem:
        raise problem
    lines, total = await price(hooks, conn, view, rules)
    pools = await _lock_and_check_capacity(hooks, conn, rules, view)
    row = _with_plain(await conn.fetch_one(_answering(_INSERT, ctx.models.booking_columns), {
        "id": b["id"], "customer_id": customer_id, "starts_at": b["starts_at"], "time_zone": b["time_zone"],
        "duration_minutes": b["duration_minutes"], "party_size": view.party_size, "adults": b["adults"],
        "children": b["children"], "zip_code": b["zip_code"], **sealed(ctx, b["id"], b), "status": "pending",
        "price_lines": lines, "total_cents": total, "currency": rules.currency, "slot_key": slot_key(b["starts_at"]),
        "pools": pools}), b)
    await hooks.booking_stored(booking=view_of(row, stored=True, inputs=inputs), previous=None, conn=conn)
    await events.publish(conn, ctx, "booking.created", {
        "booking_id": str(row["id"]), "customer_id": str(customer_id), "starts_at": row["starts_at"].isoformat(),
        "time_zone": row["time_zone"], "party_size": row["party_size"], "total_cents": total,
        **plain_inputs(inputs),
    }, actor=_actor(principal))
    return row


async def quote(conn, ctx, principal: Principal, data: QuoteRequest, *, now: datetime | None = None) -> Quote:
    """Price a prospective booking with the same rules and hooks as create, storing nothing."""
    rules = rules_of(ctx)
    hooks = ctx.hooks(principal.flag_context())
    b = _prospective(data, rules)
    _check_party(rules, b)
    if b["starts_at"] is not None:
        _check_time(rules, b, now or utcnow())
    b["customer_id"] = _quoted_for(principal, data.customer_id)
    view = view_of(b, inputs=inputs_of(data, ctx.models.owners.get("quote", ())))
    problem = await refusal(hooks, conn, view)
    if problem:
        raise problem
    lines, total = await price(hooks, conn, view, rules)
    return Quote(lines=[PriceLine(**line) for line in lines], total_cents=total, currency=rules.currency)


def _quoted_for(principal: Principal, requested: uuid.UUID | None) -> uuid.UUID | None:
    """Whose data a quote's hooks may read (a loyalty balance): the signed-in customer's own,
    a named customer's only for staff who may book for them; an anonymous quote is nobody's."""
    if principal.kind == "customer":
        own = _customer_of(principal)
        if requested is not None and requested != own:
            raise Problem(403, "Forbidden", "customers quote for themselves only", kind="forbidden",
                          permission="bookings.write")
        return own
    if requested is not None and not principal.can("bookings.write"):
        raise Problem(403, "Forbidden", "naming a customer needs bookings.write", kind="forbidden",
                      permission="bookings.write")
    return requested


def _customer_of(principal: Principal) -> uuid.UUID | None:
    try:
        return uuid.UUID(principal.id)
    except (TypeError, ValueError):
        return None


_BY_ID = sa.select(bookings).where(bookings.c.id == sa.bindparam("booking_id"))
_BY_ID_FOR_UPDATE = _BY_ID.with_for_update()


async def get_booking(conn, ctx, principal: Principal, booking_id: uuid.UUID, *, for_update: bool = False,
                      permission: str = "bookings.read", columns: tuple = ()) -> dict[str, Any]:
    """The booking (with the plugins' booking ``columns`` when given), if the caller may see it."""
    row = await conn.fetch_one(_answering(_BY_ID_FOR_UPDATE if for_update else _BY_ID, columns),
                               {"booking_id": booking_id})
    if row is None:
        raise not_found("Booking")
    check_owner_or(principal, row["customer_id"], permission, "Booking")
    return opened(ctx, row)


async def update_booking(conn, ctx, principal: Principal, booking_id: uuid.UUID, patch: BookingUpdate, *,
                         now: datetime | None = None) -> dict[str, Any]:
    """Reschedule or change a booking: re-validated and re-priced; publishes booking.updated."""
    rules = rules_of(ctx)
    now = now or utcnow()
    old = await get_booking(conn, ctx, principal, booking_id, for_update=True, permission="bookings.write")
    if old["status"] not in ACTIVE:
        raise conflict(f"a {old['status']} booking cannot be changed", current_status=old["status"])
    names = ctx.models.owners.get("booking_update", ())
    inputs = inputs_of(patch, names)
    given = patch.model_dump(exclude_unset=True, exclude=set(names))
    for field in ("starts_at", "adults", "children", "address", "time_zone", "duration_minutes"):
        if field in given and given[field] is None:
            raise invalid(field, "may not be null")
    new = {**old, **given}
    tz = zone(new["time_zone"])
    if "starts_at" in given:
        new["starts_at"] = resolve_start(given["starts_at"], tz)
    retimed = any(new[f] != old[f] for f in ("starts_at", "time_zone", "duration_minutes"))
    regrouped = new["adults"] != old["adults"] or new["children"] != old["children"]
    if regrouped:
        _check_party(rules, new)
    if retimed:
        _check_time(rules, new, now)
    hooks = ctx.hooks(principal.flag_context())
    view = view_of(new, stored=True, inputs=inputs)
    problem = await refusal(hooks, conn, view)
    if problem:
        raise problem
    # Only what a price can depend on re-prices; a changed note keeps the agreed price.
    if retimed or regrouped or inputs or any(new[f] != old[f] for f in ("address", "zip_code")):
        lines, total = await price(hooks, conn, view, rules)
    else:
        lines, total = old["price_lines"], old["total_cents"]
    if retimed or inputs:
        pools = await _lock_and_check_capacity(hooks, conn, rules, view, exclude=booking_id)
    else:
        pools = old["pools"]
    values = {f: new[f] for f in ("starts_at", "time_zone", "duration_minutes", "adults", "children", "address",
                                  "zip_code", "menu", "notes")}
    values.update(party_size=view.party_size, price_lines=lines, total_cents=total,
                  slot_key=slot_key(new["starts_at"]), pools=pools)
    changes = {f: {"old": _masked(f, old[f]), "new": _masked(f, v)} for f, v in values.items()
               if f not in ("price_lines", "slot_key", "pools") and old[f] != v}
    # all three sealed again, under the current key: a row's fields share its one key_id
    stored = {f: v for f, v in values.items() if f not in SEALED} | sealed(ctx, booking_id, new)
    row = _with_plain(await conn.fetch_one(sa.update(bookings).where(bookings.c.id == booking_id)
                                           .values(**stored, updated_at=sa.func.now())
                                           .returning(*_OPEN_COLUMNS, *ctx.models.booking_columns)), new)
    await hooks.booking_stored(booking=view_of(row, stored=True, inputs=inputs), previous=view_of(old, stored=True),
                               conn=conn)
    if changes or inputs:
        await events.publish(conn, ctx, "booking.updated", {
            "booking_id": str(booking_id), "customer_id": str(row["customer_id"]), "changes": changes,
            **plain_inputs(inputs),
        }, actor=_actor(principal))
    return row


# the customer's own words and where they live: the outbox keeps payloads for days, so an
# event says that they changed, never what they were or became (re-read the booking)
_PII = frozenset({"address", "menu", "notes"})


def _masked(field: str, value: Any) -> Any:
    return ("***" if value is not None else None) if field in _PII else _plain(value)


async def transition(conn, ctx, principal: Principal, booking_id: uuid.UUID, target: str, *,
                     reason: str | None = None) -> dict[str, Any]:
    """Move a booking to ``target`` (allowed transitions only, else 409) and publish the event."""
    if target in ("confirmed", "completed") and not principal.can("bookings.write"):
        raise Problem(403, "Forbidden", "missing permission bookings.write", kind="forbidden",
                      permission="bookings.write")
    old = await get_booking(conn, ctx, principal, booking_id, for_update=True, permission="bookings.write")
    if target not in TRANSITIONS[old["status"]]:
        raise conflict(f"a {old['status']} booking cannot become {target}", current_status=old["status"])
    values: dict[str, Any] = {"status": target, "updated_at": sa.func.now()}
    if target == "cancelled":
        values["cancel_reason"] = reason
    row = _with_plain(await conn.fetch_one(sa.update(bookings).where(bookings.c.id == booking_id).values(**values)
                                           .returning(*_OPEN_COLUMNS, *ctx.models.booking_columns)), old)
    await ctx.hooks(principal.flag_context()).booking_stored(booking=view_of(row, stored=True),
                                                             previous=view_of(old, stored=True), conn=conn)
    payload = {"booking_id": str(booking_id), "customer_id": str(row["customer_id"])}
    if target == "cancelled":
        payload["reason"] = reason
    await events.publish(conn, ctx, f"booking.{target}", payload, actor=_actor(principal))
    return row


# --- listing -----------------------------------------------------------------------------


@functools.cache
def _answering(stmt, columns: tuple):
    """``stmt`` answering the plugins' booking columns too (built once per statement)."""
    if not columns:
        return stmt
    return stmt.add_columns(*columns) if isinstance(stmt, sa.Select) else stmt.returning(*columns)


async def views(ctx, principal: Principal, rows: list[dict[str, Any]]) -> list[Booking]:
    """Rows as the booking view, with the plugins' fields filled for all of them at once."""
    model = ctx.models.booking
    if not ctx.models.owners.get("booking") or not rows:
        return [model.of(row) for row in rows]
    filled: dict[str, list] = {}
    for answer in await ctx.hooks(principal.flag_context()).booking_fields(rows=tuple(rows)):
        filled.update(answer)
    return [model.of(row, **{name: values[i] for name, values in filled.items()}) for i, row in enumerate(rows)]


@functools.cache
def _list_query(customer: bool, status: bool, starts_from: bool, starts_to: bool, after: bool):
    """The list statement of one shape of filters, built once: building a statement costs
    more than running a cached one."""
    c = bookings.c
    cond = []
    if customer:
        cond.append(c.customer_id == sa.bindparam("customer_id"))
    if status:
        cond.append(c.status == sa.bindparam("status"))
    if starts_from:
        cond.append(c.starts_at >= sa.bindparam("starts_from"))
    if starts_to:
        cond.append(c.starts_at < sa.bindparam("starts_to"))
    if after:
        cond.append(sa.tuple_(c.created_at, c.id) < sa.tuple_(
            sa.bindparam("after_at", type_=sa.DateTime(timezone=True)), sa.bindparam("after_id", type_=c.id.type)))
    return (sa.select(bookings).where(*cond).order_by(c.created_at.desc(), c.id.desc())
            .limit(sa.bindparam("limit", type_=sa.Integer)))


async def list_bookings(conn, ctx, principal: Principal, *, status: str | None = None,
                        starts_from: datetime | None = None, starts_to: datetime | None = None,
                        customer_id: uuid.UUID | None = None, cursor: str | None = None, limit: int = DEFAULT_LIMIT,
                        params: dict[str, str] | None = None) -> tuple[list[dict], str | None]:
    """Newest first, keyset-paginated on (created_at, id)."""
    if principal.kind == "customer":
        if customer_id is not None and str(customer_id) != principal.id:
            raise Problem(403, "Forbidden", "customers list their own bookings", kind="forbidden",
                          permission="bookings.read")
        customer_id = own_id(principal)
    elif not principal.can("bookings.read"):
        raise Problem(403, "Forbidden", "missing permission bookings.read", kind="forbidden",
                      permission="bookings.read")
    binds: dict[str, Any] = {"customer_id": customer_id, "status": status, "starts_from": starts_from,
                             "starts_to": starts_to, "limit": limit + 1}
    if cursor:
        binds["after_at"], binds["after_id"] = decode_keys(cursor, _LIST_KEYS)
    query = _answering(_list_query(customer_id is not None, bool(status), bool(starts_from), bool(starts_to),
                                   bool(cursor)), ctx.models.booking_columns)
    if params:
        extra = [c for got in await ctx.hooks(principal.flag_context()).booking_query_filters(params=params)
                 for c in got]
        if extra:
            query = query.where(*extra)
    rows, next_cursor = page_of(await conn.fetch_all(query, binds), _LIST_KEYS, limit)
    return [opened(ctx, row) for row in rows], next_cursor


_LIST_KEYS = (bookings.c.created_at, bookings.c.id)


# --- availability --------------------------------------------------------------------------


async def availability(conn, ctx, principal: Principal, *, start_day: date, end_day: date,
                       party_size: int | None = None, time_zone: str | None = None,
                       duration_minutes: int | None = None, zip_code: str | None = None,
                       inputs: Mapping[str, Any] = MappingProxyType({}), now: datetime | None = None
                       ) -> Availability:
    """Bookable slots of the local days ``start_day``..``end_day`` with their remaining capacity."""
    rules = rules_of(ctx)
    now = now or utcnow()
    tz_name = time_zone or rules.default_time_zone
    tz = zone(tz_name, "query.time_zone")
    if end_day < start_day:
        raise invalid("query.to", "must not be before from")
    if (end_day - start_day).days >= MAX_AVAILABILITY_DAYS:
        raise invalid("query.to", f"a query spans at most {MAX_AVAILABILITY_DAYS} days")
    size = rules.min_party if party_size is None else party_size
    problem = party_problem(rules, size, 0)
    if problem:
        raise invalid("query.party_size", problem[1])
    duration = duration_minutes or rules.default_duration
    if duration > rules.max_duration:
        raise invalid("query.duration_minutes", f"events last at most {rules.max_duration} minutes")
    # Days outside the bookable window hold no slot; skipping them also keeps dates in range.
    day = max(start_day, (now - timedelta(days=1)).date())
    end_day = min(end_day, (now + rules.max_advance + timedelta(days=1)).date())
    candidates = []
    while day <= end_day:
        candidates.extend(bookable_starts(rules, day, tz, duration, now))
        day += timedelta(days=1)
    slots: list = []
    if not candidates:
        return ctx.models.availability_answer(time_zone=tz_name, party_size=size, duration_minutes=duration,
                                              slots=slots)
    hooks = ctx.hooks(principal.flag_context())
    customer = _customer_of(principal) if principal.kind == "customer" else None
    draft = {"starts_at": None, "time_zone": tz_name, "duration_minutes": duration, "adults": size, "children": 0,
             "customer_id": customer, "zip_code": zip_code}
    # Asked once for every slot: what depends on the time is each plugin's booking_limits.
    # A refusal is answered as create answers it (a zip code nobody serves is a 422 naming
    # the field, not a day that looks fully booked).
    problem = await refusal(hooks, conn, view_of(draft, inputs=inputs), "query")
    if problem is not None:
        raise problem
    length = timedelta(minutes=duration)
    first = view_of({**draft, "starts_at": candidates[0]}, inputs=inputs)
    limits = await limits_of(hooks, conn, first, tuple(candidates))
    busy = await busy_of(conn, limits, candidates[0], candidates[-1] + length, customer=customer)
    said = {name: value for limit in limits for name, value in (limit.slot or {}).items()}
    for k, start in enumerate(candidates):
        free = room(rules, limits, busy, k, covered(rules, start, duration))
        if isinstance(free, Refusal) or free[0] <= 0:
            continue
        slots.append(ctx.models.slot(starts_at=start, local_start=start.astimezone(tz), remaining=free[0],
                                     capacity=free[1], **said))
    return ctx.models.availability_answer(time_zone=tz_name, party_size=size, duration_minutes=duration,
                                          slots=slots)
