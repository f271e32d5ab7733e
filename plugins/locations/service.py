"""Locations: CRUD, choosing a booking's location, and the booking hooks' logic."""
from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert


from myhibachi.core.errors import invalid, not_found
from myhibachi.core.models import bookings
from myhibachi.core.pagination import decode_cursor, encode_cursor
from myhibachi.plugins.locations.models import booking_locations, locations

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
    row = (await conn.execute(sa.insert(locations).values(id=uuid.uuid4(), **values).returning(locations))
           ).mappings().one()
    await ctx.cache.changed(conn, CACHE)
    return public(row)


async def get_location(conn, location_id: uuid.UUID, *, include_inactive: bool) -> dict[str, Any]:
    row = await conn.fetch_one(sa.select(locations).where(locations.c.id == location_id))
    if row is None or (not include_inactive and row["status"] != "active"):
        raise not_found("Location")
    return public(row)


async def update_location(conn, ctx, location_id: uuid.UUID, fields: dict[str, Any]) -> dict[str, Any]:
    current = (await conn.execute(sa.select(locations).where(locations.c.id == location_id).with_for_update())
               ).mappings().first()
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
    if cursor:
        at, lid = decode_cursor(cursor)
        query = query.where(sa.tuple_(locations.c.created_at, locations.c.id) > sa.tuple_(at, lid))
    rows = (await conn.execute(query.order_by(locations.c.created_at, locations.c.id).limit(limit + 1))
            ).mappings().all()
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [public(r) for r in rows],
            "next_cursor": encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None}


# --- a booking's location --------------------------------------------------------------------


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 6371.0 * 2 * math.asin(math.sqrt(a))


_ACTIVE = sa.select(locations).where(locations.c.status == "active").order_by(locations.c.created_at,
                                                                             locations.c.id)
# Asked on every booking: built once, run on the fast lane.
_SERVING_ZIP = _ACTIVE.where(META["service_area"]["zip_codes"].has_key(sa.bindparam("zip", type_=sa.String))
                             ).limit(1)
_BY_ID = sa.select(locations).where(locations.c.id == sa.bindparam("location_id"))
_ASSIGNED = sa.select(booking_locations.c.location_id).where(booking_locations.c.booking_id == sa.bindparam("booking_id"))


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
    best = None
    for row in (await conn.execute(_ACTIVE.where(META["service_area"].has_key("radius_km")))).mappings():
        area = row["metadata"]["service_area"]
        distance = _km(lat, lon, area["lat"], area["lon"])
        if distance <= area["radius_km"] and (best is None or distance < best[0]):
            best = (distance, row)
    return best[1] if best else None


def _starts_at(booking: dict[str, Any]) -> datetime | None:
    value = booking.get("starts_at")
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    return value if isinstance(value, datetime) and value.tzinfo else None


async def location_of(conn, ctx, booking: dict[str, Any]) -> tuple[Any, str | None]:
    """The booking's location row and None, or None and the reason there is none. The core
    asks three hooks about the same booking; each lookup is answered by ``ctx.cache``."""
    extra, zip_code = booking.get("extra") or {}, booking.get("zip_code")
    given = extra.get("location_id")
    if given:
        try:
            location_id = uuid.UUID(str(given))
        except ValueError:
            return None, f"location_id: {given!r} is not a location id"
        row = await ctx.cache.fetch_one(CACHE, _BY_ID, {"location_id": location_id}, conn)
        if row is None:
            return None, f"location_id: location {location_id} does not exist"
        if row["status"] == "maintenance":
            return None, f"location_id: {row['name']} is closed for maintenance"
        if row["status"] != "active":
            return None, f"location_id: {row['name']} is not active"
        return row, None
    row = await serving(conn, ctx, zip_code, extra.get("lat"), extra.get("lon"))
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


def _too_many(row, booking: dict[str, Any]) -> str | None:
    party = booking.get("party_size")
    if isinstance(party, int) and party > row["capacity"]:
        return f"party_size: {row['name']} serves at most {row['capacity']} guests per event"
    return None


async def validate_booking(conn, ctx, booking: dict[str, Any]) -> str | None:
    """Refuse a booking no location can take; otherwise put the chosen location_id in its extra."""
    row, reason = await location_of(conn, ctx, booking)
    if row is None:
        return reason
    reason = _too_many(row, booking)
    if reason:
        return reason
    starts_at = _starts_at(booking)
    if starts_at is not None:
        reason = _closed(row, starts_at)
        if reason:
            return reason
    # Carried by booking.created, whose handler links the booking to this very location.
    if isinstance(booking.get("extra"), dict):
        booking["extra"]["location_id"] = str(row["id"])
    else:
        booking["extra"] = {"location_id": str(row["id"])}
    return None


async def slot_capacity(conn, ctx, booking: dict[str, Any]) -> int | None:
    """Events the booking's location runs at once; with ``slot_scope`` the core counts them
    per location."""
    row, _ = await location_of(conn, ctx, booking)
    return row["events_per_slot"] if row is not None else None


async def slot_answers(conn, ctx, booking: dict[str, Any], starts: list[datetime]) -> list[int | str]:
    """Availability's slots at once: what validate_booking and slot_capacity say of each."""
    row, reason = await location_of(conn, ctx, booking)
    reason = reason if row is None else _too_many(row, booking)
    if reason:
        return [reason] * len(starts)
    return [_closed(row, start) or row["events_per_slot"] for start in starts]


async def slot_scope(conn, ctx, booking: dict[str, Any]) -> str | None:
    row, _ = await location_of(conn, ctx, booking)
    return row["id"].hex if row is not None else None


def query_filters(params: dict[str, str]) -> list[Any] | None:
    """``?location_id=``: bookings linked to the location, which the booking.created handler
    does as the event is delivered (a second or so after the create commits)."""
    raw = params.get("location_id")
    if raw is None:
        return None
    try:
        location_id = uuid.UUID(raw)
    except ValueError as exc:
        raise invalid("location_id", "is not a location id") from exc
    return [bookings.c.id.in_(sa.select(booking_locations.c.booking_id)
                              .where(booking_locations.c.location_id == location_id))]


_ASSIGN = pg_insert(booking_locations).values(
    booking_id=sa.bindparam("booking_id"), location_id=sa.bindparam("location_id"),
).on_conflict_do_update(index_elements=[booking_locations.c.booking_id],
                        set_={"location_id": sa.bindparam("location_id")})


async def assign(conn, booking_id: uuid.UUID, location_id: uuid.UUID) -> None:
    await conn.run(_ASSIGN, {"booking_id": booking_id, "location_id": location_id})


async def _record(conn, ctx, booking_id: uuid.UUID, extra: dict[str, Any] | None) -> None:
    """Record the location validate_booking chose (kept even if it closed since), or the one
    serving the booking's zip code when the event does not name it."""
    row = await conn.fetch_one(sa.select(bookings.c.zip_code).where(bookings.c.id == booking_id))
    if row is None:
        return
    try:
        given = uuid.UUID(str((extra or {}).get("location_id")))
    except ValueError:
        given = None
    if given is not None and (await conn.execute(sa.select(locations.c.id).where(locations.c.id == given))).first():
        await assign(conn, booking_id, given)
        return
    location = await serving(conn, ctx, row["zip_code"])
    if location is not None:
        await assign(conn, booking_id, location["id"])


async def on_booking_created(conn, event, ctx) -> None:
    payload = event["payload"]
    # The location validate_booking chose travels in the payload's extra.
    await _record(conn, ctx, uuid.UUID(str(payload["booking_id"])), payload.get("extra"))


async def on_booking_updated(conn, event, ctx) -> None:
    payload = event["payload"]
    booking_id = uuid.UUID(str(payload["booking_id"]))
    extra = payload.get("extra") or {}
    if extra.get("location_id"):  # chosen again by validate_booking on the change
        await _record(conn, ctx, booking_id, extra)
    elif "zip_code" in (payload.get("changes") or {}):
        if await conn.fetch_one(_ASSIGNED, {"booking_id": booking_id}) is None:
            await _record(conn, ctx, booking_id, None)
