"""Group reservations: a guest list seated at chef stations, each station a core booking made
through the core's create path (rules, the location's capacity and stations, price), the
group menu's surcharges priced through ``price_booking``, and each payer's share, which the
payer pays a deposit of through the deposits plugin's service."""
from __future__ import annotations

import json
import uuid
from collections import defaultdict
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from myhibachi.core import (DepositOperations, Principal, Problem, Refusal, bookings, check_owner_or, conflict, invalid,
                            not_found, tables, utcnow, vault)
from myhibachi.plugins.group_reservations.models import groups, guests, stations
from myhibachi.plugins.group_reservations.schemas import Billing

NAME = "group_reservations"


def _aad(group_id, field: str) -> str:
    return f"{NAME}:{group_id}:{field}"


# --- booking hooks: a station's booking carries its group and table ------------------------

_GROUP_OWNER = sa.select(groups.c.customer_id).where(groups.c.id == sa.bindparam("group_id"))
_TABLE_MENU = (sa.select(guests.c.menu_choice, sa.func.count().label("n")).where(
    guests.c.group_id == sa.bindparam("group_id"), guests.c.table_no == sa.bindparam("table_no"))
    .group_by(guests.c.menu_choice).order_by(guests.c.menu_choice))
_MENU = sa.select(groups.c.menu).where(groups.c.id == sa.bindparam("group_id"))


_STATION = sa.select(stations.c.group_id).where(stations.c.booking_id == sa.bindparam("booking_id"))
# the group whose stations this plugin's service is booking now: only it books or changes them
_BOOKING: ContextVar[uuid.UUID | None] = ContextVar("group_reservations_booking", default=None)


async def validate(conn, booking) -> Refusal | None:
    """A station is booked and changed only through its group, for the group's own customer."""
    chosen = booking.inputs.get(NAME)
    own = _BOOKING.get()
    if chosen is None:
        if own is None and booking.stored and booking.id is not None and (
                group_id := await conn.scalar(_STATION, {"booking_id": booking.id})) is not None:
            return Refusal(f"this booking is a station of group reservation {group_id}: "
                           f"its guests change through /v1/bookings/groups/{group_id}/guests", 409)
        return None
    if own != chosen.group_id:
        return Refusal("a group's stations are booked through /v1/bookings/groups", field=NAME)
    owner = await conn.scalar(_GROUP_OWNER, {"group_id": chosen.group_id})
    if owner is None or owner != booking.customer_id:
        return Refusal("no such group reservation", field=f"{NAME}.group_id")
    return None


async def menu_lines(conn, booking) -> list[dict] | None:
    """The group menu's surcharges of the station's guests, one line per choice."""
    chosen = booking.inputs.get(NAME)
    if chosen is None:
        return None
    params = {"group_id": chosen.group_id, "table_no": chosen.table_no}
    menu = {m["code"]: m for m in (await conn.scalar(_MENU, params)) or []}
    return [{"code": f"group.menu.{r['menu_choice']}", "label": f"{r['n']} x {menu[r['menu_choice']]['label']}",
             "amount_cents": r["n"] * menu[r["menu_choice"]]["surcharge_cents"]}
            for r in await conn.fetch_all(_TABLE_MENU, params)
            if r["menu_choice"] in menu and menu[r["menu_choice"]]["surcharge_cents"]]


# --- the group ------------------------------------------------------------------------------


def _check(menu: list, guest_list: list, billing) -> None:
    codes = [m["code"] for m in menu]
    if len(set(codes)) != len(codes):
        raise invalid("menu", "menu codes must be unique")
    payers = [p.name for p in billing.payers]
    if len(set(payers)) != len(payers):
        raise invalid("billing.payers", "payer names must be unique")
    for i, g in enumerate(guest_list):
        if g.menu_choice not in codes:
            raise invalid(f"guests.{i}.menu_choice", f"{g.menu_choice!r} is not on the group menu")
        if g.payer not in payers:
            raise invalid(f"guests.{i}.payer", f"{g.payer!r} is not a payer of the billing")
    if billing.split == "by_amount" and any(p.amount_cents is None for p in billing.payers):
        raise invalid("billing.payers", "by_amount: every payer gives amount_cents")


async def _store_guests(conn, ctx, group_id, guest_list) -> None:
    v = vault(ctx)
    await conn.run(sa.update(groups).where(groups.c.id == group_id).values(key_id=v.current_id))
    await conn.run(sa.delete(guests).where(guests.c.group_id == group_id))
    await conn.run(sa.insert(guests), [
        {"id": uuid.uuid4(), "group_id": group_id, "position": i, "table_no": g.table,
         "name_enc": v.encrypt(g.name, _aad(group_id, "name")),
         "contact_enc": v.encrypt(g.contact, _aad(group_id, "contact")), "child": g.child,
         "dietary_enc": v.encrypt(g.dietary, _aad(group_id, "dietary")),
         "allergens_enc": v.encrypt(json.dumps(g.allergens), _aad(group_id, "allergens")) if g.allergens else None,
         "menu_choice": g.menu_choice, "payer": g.payer} for i, g in enumerate(guest_list)])


def _allergens(v, group, token: str | None) -> list[str]:
    return json.loads(v.decrypt(token, group["key_id"], _aad(group["id"], "allergens"))) if token else []


def _tables(guest_list) -> dict[int, tuple[int, int]]:
    seats: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for g in guest_list:
        seats[g.table][1 if g.child else 0] += 1
    return {t: (a, c) for t, (a, c) in sorted(seats.items())}


_SEATS = {"body.adults", "body.children", "body.party_size"}


@contextmanager
def _at_table(table_no: int):
    """A station's refusal names the table, and the guest list where the core names the party."""
    try:
        yield
    except Problem as problem:
        if problem.detail:
            problem.detail = f"table {table_no}: {problem.detail}"
        problem.extra["table_no"] = table_no
        for e in problem.extra.get("errors") or ():
            e["field"] = "body.guests" if e["field"] in _SEATS else e["field"]
            e["message"] = f"table {table_no}: {e['message']}"
        raise


async def _book_tables(conn, ctx, principal, group, guest_list, place: dict | None = None) -> None:
    """Book, re-size or cancel the stations so there is one booking per table of the list; a
    new table is booked at ``place`` (address, zip code) or where the group's first one is."""
    b = tables.bookings
    current = {r["table_no"]: r["booking_id"] for r in await conn.fetch_all(
        sa.select(stations).where(stations.c.group_id == group["id"]))}
    wanted = _tables(guest_list)
    if place is None and set(wanted) - set(current):
        first = bookings.opened(ctx, await conn.fetch_one(sa.select(b.c.id, b.c.key_id, b.c.address_enc, b.c.zip_code)
                                                          .where(b.c.id == current[min(current)])))
        place = {"address": first["address"], "zip_code": first["zip_code"]}
    location = {"locations": {"location_id": group["location_id"]}} if group["location_id"] else {}
    token = _BOOKING.set(group["id"])
    try:
        await _book_stations(conn, ctx, principal, group, current, wanted, place, location)
    finally:
        _BOOKING.reset(token)


async def _book_stations(conn, ctx, principal, group, current, wanted, place, location) -> None:
    for table_no, (adults, children) in wanted.items():
        chosen = {"group_id": group["id"], "table_no": table_no}
        if table_no in current:
            with _at_table(table_no):
                await bookings.update_booking(conn, ctx, principal, current[table_no], ctx.models.booking_update(
                    adults=adults, children=children, **{NAME: chosen}))
            continue
        staff = {} if principal.kind == "customer" else {"customer_id": group["customer_id"]}
        with _at_table(table_no):
            row = await bookings.create_booking(conn, ctx, principal, ctx.models.booking_create(
                starts_at=group["starts_at"], time_zone=group["time_zone"], adults=adults, children=children,
                **place, **staff, **location, **{NAME: chosen}))
        await conn.run(sa.insert(stations).values(group_id=group["id"], table_no=table_no, booking_id=row["id"]))
    paying = await _paying(conn, ctx, group["id"]) if set(current) - set(wanted) else None
    for table_no, booking_id in current.items():
        if table_no not in wanted:
            if booking_id == paying:
                raise conflict(f"table {table_no} holds the payers' deposits: it stays while they are taken",
                               table_no=table_no)
            await bookings.transition(conn, ctx, principal, booking_id, "cancelled", reason="group table removed")
            await conn.run(sa.delete(stations).where(stations.c.group_id == group["id"],
                                                     stations.c.table_no == table_no))


async def _customer(conn, principal, requested: uuid.UUID | None) -> uuid.UUID:
    """A customer books for themselves; staff (groups.write) name an existing customer."""
    if principal.kind == "customer":
        own = bookings.own_id(principal)
        if requested not in (None, own):
            raise Problem(403, "Forbidden", "customers book groups for themselves only", kind="forbidden",
                          permission="groups.write")
        return own
    if not principal.can("groups.write"):
        raise Problem(403, "Forbidden", "missing permission groups.write", kind="forbidden", permission="groups.write")
    if requested is None:
        raise invalid("customer_id", "staff name the customer the group is for")
    if await conn.scalar(sa.select(tables.customers.c.id).where(tables.customers.c.id == requested)) is None:
        raise invalid("customer_id", "no such customer")
    return requested


async def _check_payers(conn, billing) -> None:
    """A payer's customer is one that exists."""
    named = {p.customer_id for p in billing.payers if p.customer_id is not None}
    found = set(await conn.scalars(sa.select(tables.customers.c.id).where(tables.customers.c.id.in_(named)))) \
        if named else set()
    for i, p in enumerate(billing.payers):
        if p.customer_id is not None and p.customer_id not in found:
            raise invalid(f"billing.payers.{i}.customer_id", "no such customer")


def _check_amounts(billing: dict, total: int) -> None:
    """By amount, the payers' amounts must sum to the stations' total."""
    if billing["split"] == "by_amount" and (given := sum(p["amount_cents"] for p in billing["payers"])) != total:
        raise invalid("billing.payers", f"the payers' amounts sum to {given}, the total is {total}")


async def create_group(conn, ctx, principal, body) -> dict[str, Any]:
    customer_id = await _customer(conn, principal, body.customer_id)
    menu = [m.model_dump() for m in body.menu]
    _check(menu, body.guests, body.billing)
    await _check_payers(conn, body.billing)
    rules = bookings.rules_of(ctx)
    tz_name = body.time_zone or rules.default_time_zone
    starts_at = bookings.resolve_start(body.starts_at, bookings.zone(tz_name))
    group = await conn.fetch_one(sa.insert(groups).values(
        id=uuid.uuid4(), customer_id=customer_id, starts_at=starts_at, time_zone=tz_name, menu=menu,
        billing=body.billing.model_dump(mode="json"), location_id=body.location_id, key_id=vault(ctx).current_id)
        .returning(groups))
    await _store_guests(conn, ctx, group["id"], body.guests)
    await _book_tables(conn, ctx, principal, group, body.guests, {"address": body.address, "zip_code": body.zip_code})
    found = await view(conn, ctx, group)
    _check_amounts(group["billing"], found["total_cents"])
    return found


async def group_for(conn, principal, group_id: uuid.UUID, permission: str, *, for_update: bool = False):
    q = sa.select(groups).where(groups.c.id == group_id)
    row = await conn.fetch_one(q.with_for_update() if for_update else q)
    check_owner_or(principal, row and row["customer_id"], permission, "group reservation")
    if row is None:
        raise not_found("group reservation")
    return row


def deadline(ctx, group) -> datetime:
    return group["starts_at"] - timedelta(hours=ctx.plugins.get(NAME).settings.menu_deadline_hours)


async def replace_guests(conn, ctx, principal, group, body) -> dict[str, Any]:
    closed = deadline(ctx, group)
    if utcnow() >= closed:
        raise conflict(f"the guest list and menu closed at {closed.isoformat()} (the menu deadline)",
                       menu_deadline=closed.isoformat())
    billing = body.billing or Billing(**group["billing"])
    _check(group["menu"], body.guests, billing)
    if body.billing is not None:
        await _check_payers(conn, billing)
        if (paying := await _paying(conn, ctx, group["id"])) is not None:
            raise conflict("the payers' deposits are taken: the billing is fixed until they are refunded",
                           booking_id=str(paying))
        group = await conn.fetch_one(sa.update(groups).where(groups.c.id == group["id"]).values(
            billing=billing.model_dump(mode="json"), updated_at=sa.func.now()).returning(groups))
    await _store_guests(conn, ctx, group["id"], body.guests)
    await _book_tables(conn, ctx, principal, group, body.guests)
    found = await view(conn, ctx, group)
    _check_amounts(group["billing"], found["total_cents"])
    return found


def _split(total: int, weights: list[int]) -> list[int]:
    """``total`` in proportion to ``weights``, largest remainders first: the parts sum to it."""
    whole = sum(weights) or len(weights)
    weights = weights if sum(weights) else [1] * len(weights)
    parts = [total * w // whole for w in weights]
    order = sorted(range(len(weights)), key=lambda i: -(total * weights[i] % whole))
    for i in order[:total - sum(parts)]:
        parts[i] += 1
    return parts


async def view(conn, ctx, group) -> dict[str, Any]:
    """The group with its stations' stored prices and each payer's share of their total."""
    v, rules = vault(ctx), bookings.rules_of(ctx)
    b = tables.bookings
    guest_rows = await conn.fetch_all(
        sa.select(guests).where(guests.c.group_id == group["id"]).order_by(guests.c.position))
    table_rows = await conn.fetch_all(
        sa.select(stations.c.table_no, b.c.id, b.c.party_size, b.c.total_cents, b.c.created_at)
        .join(b, b.c.id == stations.c.booking_id).where(stations.c.group_id == group["id"]).order_by(stations.c.table_no))
    menu = {m["code"]: m for m in group["menu"]}
    billing = group["billing"]
    total = sum(t["total_cents"] for t in table_rows)
    if billing["split"] == "by_amount":
        shares = {p["name"]: p["amount_cents"] for p in billing["payers"]}
    else:
        shares = {p["name"]: 0 for p in billing["payers"]}
        for t in table_rows:
            seated = [g for g in guest_rows if g["table_no"] == t["table_no"]]
            weights = [(rules.price_child if g["child"] else rules.price_adult)
                       + menu.get(g["menu_choice"], {}).get("surcharge_cents", 0) for g in seated]
            for g, part in zip(seated, _split(t["total_cents"], weights)):
                shares[g["payer"]] += part
    paid = await _deposits(conn, ctx, table_rows)
    owner = {p["name"]: p.get("customer_id") for p in billing["payers"]}
    return {
        **group,
        "guests": [{"name": v.decrypt(g["name_enc"], group["key_id"], _aad(group["id"], "name")),
                    "contact": v.decrypt(g["contact_enc"], group["key_id"], _aad(group["id"], "contact")),
                    "child": g["child"], "dietary": v.decrypt(g["dietary_enc"], group["key_id"],
                                                              _aad(group["id"], "dietary")),
                    "allergens": _allergens(v, group, g["allergens_enc"]),
                    "menu_choice": g["menu_choice"], "table": g["table_no"], "payer": g["payer"]} for g in guest_rows],
        "tables": [{"table_no": t["table_no"], "booking_id": t["id"], "party_size": t["party_size"],
                    "total_cents": t["total_cents"]} for t in table_rows],
        "total_cents": total, "menu_deadline": deadline(ctx, group), "deposit_status": paid["deposit_status"],
        "billing_booking_id": _billing_booking(table_rows),
        "shares": [{"payer": k, "amount_cents": a, "customer_id": owner.get(k),
                    "deposit_status": paid["shares"][k]["status"] if k in paid["shares"] else "none",
                    "deposit_id": paid["shares"][k]["id"] if k in paid["shares"] else None}
                   for k, a in shares.items()]}


# --- each payer's deposit (the deposits plugin's, through its service) -----------------------

# Who confirms a group's stations once every payer's deposit is paid.
SYSTEM = Principal("system", NAME, frozenset({"bookings.write"}))


def _billing_booking(table_rows):
    """The station booking a group's payments are taken on: its first booked (a station holding
    deposits is never removed, so it stays the first)."""
    return min(table_rows, key=lambda t: (t["created_at"], t["id"]))["id"] if table_rows else None


async def _deposits(conn, ctx, table_rows) -> dict[str, Any]:
    booking_id = _billing_booking(table_rows)
    if booking_id is None:
        return {"deposit_status": "none", "shares": {}}
    return await ctx.service(DepositOperations, caller=NAME).shares(conn, booking_id)


_ACTIVE = ("requires_payment", "processing", "succeeded", "partially_refunded")


async def _paying(conn, ctx, group_id) -> uuid.UUID | None:
    """The group's billing booking while a payer's deposit on it is in progress or paid."""
    b = tables.bookings
    table_rows = await conn.fetch_all(sa.select(b.c.id, b.c.created_at).join(stations, stations.c.booking_id == b.c.id)
                                      .where(stations.c.group_id == group_id))
    paid = await _deposits(conn, ctx, table_rows)
    return _billing_booking(table_rows) if any(d["status"] in _ACTIVE for d in paid["shares"].values()) else None


async def pay_share(conn, ctx, principal, group_id: uuid.UUID, body, key: str) -> dict[str, Any]:
    """A payer pays their own share's deposit (staff with ``payments.write`` any payer's): one
    PaymentIntent of the deposits plugin, at most what the share owes."""
    group = await conn.fetch_one(sa.select(groups).where(groups.c.id == group_id).with_for_update())
    if group is None:
        raise not_found("group reservation")
    payers = {p["name"]: uuid.UUID(str(p.get("customer_id") or group["customer_id"]))
              for p in group["billing"]["payers"]}
    if principal.kind == "customer":
        if principal.id not in {str(c) for c in payers.values()}:
            raise not_found("group reservation")
        if str(payers.get(body.payer)) != principal.id:
            raise Problem(404, "Share not found", "payer: no share of yours by that name", kind="not-found",
                          errors=[{"field": "body.payer", "message": "no share of yours by that name"}])
    elif not principal.can("payments.write"):
        raise Problem(403, "Forbidden", "missing permission payments.write", kind="forbidden",
                      permission="payments.write")
    elif body.payer not in payers:
        raise invalid("payer", f"{body.payer!r} is not a payer of the billing")
    found = await view(conn, ctx, group)
    owed = {s["payer"]: s["amount_cents"] for s in found["shares"]}
    booking_id = found["billing_booking_id"]
    if booking_id is None:
        raise conflict("the group has no station booked")
    dep = await ctx.service(DepositOperations, caller=NAME).pay_share(
        conn, principal, booking_id, share=body.payer, shares=sum(1 for a in owed.values() if a > 0),
        payer_id=payers[body.payer], owed_cents=owed[body.payer], amount_cents=body.amount_cents,
        payment_method=body.payment_method, key=key)
    return {**dep, "payer": body.payer}


async def on_payment_succeeded(conn, event, ctx) -> None:
    """Once every payer's deposit is captured, the group's pending stations are confirmed."""
    booking_id = uuid.UUID(str(event["payload"]["booking_id"]))
    group_id = await conn.scalar(_STATION, {"booking_id": booking_id})
    if group_id is None:
        return
    if (await ctx.service(DepositOperations, caller=NAME).shares(conn, booking_id))["deposit_status"] != "succeeded":
        return
    b = tables.bookings
    for station in await conn.scalars(sa.select(b.c.id).join(stations, stations.c.booking_id == b.c.id).where(
            stations.c.group_id == group_id, b.c.status == "pending").order_by(b.c.id)):
        await bookings.transition(conn, ctx, SYSTEM, station, "confirmed")


async def cancel_group(conn, ctx, principal, group, reason: str | None) -> dict[str, Any]:
    """Cancel every station still to come; the deposits plugin refunds each payer's deposit
    (on ``booking.cancelled``), once."""
    b = tables.bookings
    open_ = list(await conn.scalars(sa.select(b.c.id).join(stations, stations.c.booking_id == b.c.id).where(
        stations.c.group_id == group["id"], b.c.status.in_(("pending", "confirmed"))).order_by(b.c.id)))
    if not open_:
        raise conflict("the group has no station left to cancel")
    for booking_id in open_:
        await bookings.transition(conn, ctx, principal, booking_id, "cancelled", reason=reason)
    return await view(conn, ctx, group)


async def merge_customer(conn, source_id: uuid.UUID, target_id: uuid.UUID) -> None:
    """A merge: the duplicate's groups, and the shares billing names them the payer of, belong to
    the customer kept."""
    await conn.run(sa.update(groups).where(groups.c.customer_id == source_id).values(customer_id=target_id))
    named = sa.cast({"payers": [{"customer_id": str(source_id)}]}, JSONB)
    for row in await conn.fetch_all(sa.select(groups.c.id, groups.c.billing).where(groups.c.billing.contains(named))):
        payers = [{**p, "customer_id": str(target_id)} if p.get("customer_id") == str(source_id) else p
                  for p in row["billing"]["payers"]]
        await conn.run(sa.update(groups).where(groups.c.id == row["id"]).values(
            billing={**row["billing"], "payers": payers}, updated_at=sa.func.now()))


async def rotate_keys(conn, ctx, *, batch: int) -> int:
    """Every group's guest list sealed again under the current PII key (the group's row holds
    the key of its guests' ciphertexts, bound to the group)."""
    v = vault(ctx)
    read = (sa.select(groups.c.id, groups.c.key_id).where(groups.c.key_id != v.current_id).limit(batch)
            .with_for_update(skip_locked=True))
    done = 0
    while rows := await conn.fetch_all(read):
        for group in rows:
            for guest in await conn.fetch_all(sa.select(guests).where(guests.c.group_id == group["id"])):
                await conn.run(sa.update(guests).where(guests.c.id == guest["id"]).values(**{
                    f"{f}_enc": v.rekey(guest[f"{f}_enc"], group["key_id"], _aad(group["id"], f))
                    for f in ("name", "contact", "dietary", "allergens")}))
            await conn.run(sa.update(groups).where(groups.c.id == group["id"]).values(key_id=v.current_id))
        done += len(rows)
    return done
