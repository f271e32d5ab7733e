"""Locations: CRUD, choosing a booking's location, and the booking hooks' logic."""
from __future__ import annotations

import functools
import math
import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa


from myhibachi.core import BookingView, Refusal, SlotLimit, fetch_page, invalid, not_found, tables
from myhibachi.plugins.locations.models import locations
from myhibachi.plugins.locations.schemas import BookingLocation

META = locations.c["metadata"]
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
COLUMNS = ("name", "address", "city", "state", "zip_code", "phone", "email", "time_zone", "capacity",
           "events_per_slot", "status")
IN_METADATA = ("service_area", "hours")
CACHE = "locations"  # every booking asks which location takes it: answered from ctx.cache


def public(row) -> dict[str, Any]:
    data = dict(row)
    meta = dict(data.pop("metadata") or {})
    for key in IN_METADATA:
        data[key] = meta.pop(key, None)
    data["metadata"] = meta
    return data


def _row_values(fields: dict[str, Any], current_meta: dict[str, Any] | None = None) -> dict[str, Any]:
    values = {k: fields[k] for k in COLUMNS if k in fields}
    if any(k in fields for k in (*IN_METADATA, "metadata")):
        meta = dict(current_meta or {})
        if "metadata" in fields:  # free-form keys never overwrite the validated parts
            free = {k: v for k, v in (fields["metadata"] or {}).items() if k not in IN_METADATA}
            meta = {k: v for k, v in meta.items() if k in IN_METADATA} | free
        for key in IN_METADATA:
            if key in fields:
                if fields[key] is None:
                    meta.pop(key, None)
                else:
                    meta[key] = fields[key]
        values["metadata"] = meta
    return values


async def create_location(conn, ctx, fields: dict[str, Any]) -> dict[str, Any]:
    values = _row_values(fields)
    values.setdefault("metadata", {})
    row = await conn.fetch_one(sa.insert(locations).values(id=uuid.uuid4(), **values).returning(locations))
    await ctx.cache.changed(conn, CACHE)
    return public(row)


async def get_location(conn, location_id: uuid.UUID, *, include_inactive: bool) -> dict[str, Any]:
    row = await conn.fetch_one(sa.select(locations).where(locations.c.id == location_id))
    if row is None or (not include_inactive and row["status"] != "active"):
        raise not_found("Location")
    return public(row)


async def update_location(conn, ctx, location_id: uuid.UUID, fields: dict[str, Any]) -> dict[str, Any]:
    current = await conn.fetch_one(sa.select(locations).where(locations.c.id == location_id).with_for_update())
    if current is None:
        raise not_found("Location")
    values = _row_values(fields, current["metadata"])
    row = await conn.fetch_one(sa.update(locations).where(locations.c.id == location_id)
                              .values(**values, updated_at=sa.func.now()).returning(locations))
    await ctx.cache.changed(conn, CACHE)
    return public(row)


async def deactivate_location(conn, ctx, location_id: uuid.UUID) -> dict[str, Any]:
    return await update_location(conn, ctx, location_id, {"status": "inactive"})


async def list_locations(conn, *, statuses: list[str] | None, limit: int, cursor: str | None) -> dict[str, Any]:
    query = sa.select(locations)
    if statuses is not None:
        query = query.where(locations.c.status.in_(statuses))
    rows, nxt = await fetch_page(conn, query, (locations.c.created_at, locations.c.id), limit=limit, cursor=cursor,
                                 descending=False)
    return {"items": [public(r) for r in rows], "next_cursor": nxt}


# --- a booking's location --------------------------------------------------------------------


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 6371.0 * 2 * math.asin(math.sqrt(min(a, 1.0)))  # rounding puts antipodes just past 1


_ACTIVE = sa.select(locations).where(locations.c.status == "active").order_by(locations.c.created_at,
                                                                             locations.c.id)
# Asked on every booking: built once, run on the fast lane.
_SERVING_ZIP = _ACTIVE.where(META["service_area"]["zip_codes"].has_key(sa.bindparam("zip", type_=sa.String))
                             ).limit(1)
_BY_ID = sa.select(locations).where(locations.c.id == sa.bindparam("location_id"))


async def serving(conn, ctx, zip_code: str | None, lat: Any = None, lon: Any = None):
    """The active location serving a zip code (the oldest, if several), else the nearest
    whose radius covers the given point."""
    if zip_code:
        row = await ctx.cache.fetch_one(CACHE, _SERVING_ZIP, {"zip": zip_code}, conn)
        if row is not None:
            return row
    try:
        lat, lon = float(lat), float(lon)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(lat) and math.isfinite(lon)):
        return None
    best = None
    for row in await conn.fetch_all(_ACTIVE.where(META["service_area"].has_key("radius_km"))):
        area = row["metadata"]["service_area"]
        distance = _km(lat, lon, area["lat"], area["lon"])
        if distance <= area["radius_km"] and (best is None or distance < best[0]):
            best = (distance, row)
    return best[1] if best else None


async def location_of(conn, ctx, booking: BookingView) -> tuple[Any, str | None]:
    """The booking's location row and None, or None and the reason there is none. The core
    asks three hooks about the same booking; each lookup is answered by ``ctx.cache``."""
    choice = booking.inputs.get("locations")
    zip_code = booking.zip_code
    location_id = choice.location_id if choice else None
    if location_id:
        row = await ctx.cache.fetch_one(CACHE, _BY_ID, {"location_id": location_id}, conn)
        if row is None:
            return None, f"location_id: location {location_id} does not exist"
        if row["status"] == "maintenance":
            return None, f"location_id: {row['name']} is closed for maintenance"
        if row["status"] != "active":
            return None, f"location_id: {row['name']} is not active"
        return row, None
    row = await serving(conn, ctx, zip_code, *((choice.lat, choice.lon) if choice else ()))
    if row is not None:
        return row, None
    if zip_code:
        return None, f"zip_code: no active location serves zip code {zip_code}; choose a location_id"
    return None, "location_id: give a location_id or a zip code"


def _closed(row, starts_at: datetime) -> str | None:
    hours = (row["metadata"] or {}).get("hours")
    if not hours:
        return None
    local = starts_at.astimezone(ZoneInfo(row["time_zone"]))
    day = DAYS[local.weekday()]
    if day not in hours:
        return f"starts_at: {row['name']} is closed on {local:%A}s"
    opens, closes = hours[day]
    if not opens <= f"{local:%H:%M}" < closes:
        return f"starts_at: {row['name']} takes events on {local:%A}s from {opens} to {closes} ({row['time_zone']})"
    return None


def _too_many(row, booking: BookingView) -> str | None:
    if booking.party_size > row["capacity"]:
        return f"party_size: {row['name']} serves at most {row['capacity']} guests per event"
    return None


async def validate_booking(conn, ctx, booking: BookingView) -> Refusal | None:
    """Refuse a booking no location can take (its hours are a limit: see ``limits``)."""
    row, reason = await location_of(conn, ctx, booking)
    reason = reason if row is None else _too_many(row, booking)
    return _refused(reason) if reason else None


async def limits(conn, ctx, booking: BookingView, starts: tuple[datetime, ...]) -> SlotLimit | None:
    """The location's chef teams limit each slot, counted per location; closed hours refuse."""
    row, _ = await location_of(conn, ctx, booking)
    if row is None:
        return None
    refusals = {}
    capacity = [_refusal(refusals, _closed(row, start)) or row["events_per_slot"] for start in starts]
    return SlotLimit(pool=f"{POOL}{row['id'].hex}", capacity=capacity, slot={"locations": {"location_id": row["id"]}})


def _refusal(seen: dict[str, Refusal], reason: str | None) -> Refusal | None:
    # one object per distinct reason: a month of closed evenings shares a handful
    if reason is None:
        return None
    return seen.setdefault(reason, _refused(reason))


def _refused(reason: str) -> Refusal:
    # every reason here starts with the field it is about: "zip_code: no active location ..."
    field, _, _ = reason.partition(": ")
    return Refusal(reason, field="locations.location_id" if field == "location_id" else field)


POOL = "location:"


def location_in(pools: list[str]) -> BookingLocation | None:
    """The booking view's ``locations`` field, from the pool the booking draws on (no query)."""
    for pool in pools or ():
        if pool.startswith(POOL):
            return _located(pool)
    return None


@functools.lru_cache(maxsize=1024)
def _located(pool: str) -> BookingLocation:
    # One instance per location, shared by every booking of it (views only read it): a page
    # of bookings then validates no field of it again.
    return BookingLocation(location_id=uuid.UUID(pool[len(POOL):]))


def query_filters(params: dict[str, str]) -> list[Any] | None:
    """``?location_id=``: bookings that draw on the location's pool (the booking's row names
    it, so nothing else records the link)."""
    raw = params.get("location_id")
    if raw is None:
        return None
    try:
        location_id = uuid.UUID(raw)
    except ValueError as exc:
        raise invalid("query.location_id", "is not a location id") from exc
    return [tables.bookings.c.pools.any(f"{POOL}{location_id.hex}")]
