"""Reading and changing preferences, and the consent answer every sender gets."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from myhibachi.core import check_owner_or, invalid, not_found, publish, tables, utcnow
from myhibachi.plugins.preferences.models import customer_preferences as prefs
from myhibachi.plugins.preferences.models import preference_changes as changes
from myhibachi.plugins.preferences.schemas import Preferences

FIELDS = tuple(Preferences.model_fields)
DEFAULTS = Preferences().model_dump()
_CURRENT = sa.select(prefs).where(prefs.c.customer_id == sa.bindparam("customer_id"))
_EXISTS = sa.select(tables.customers.c.id).where(tables.customers.c.id == sa.bindparam("customer_id"))


async def customer_for(conn, customer_id: uuid.UUID, principal, permission: str) -> None:
    """Customers reach only their own preferences (another's is 404); staff need ``permission``."""
    check_owner_or(principal, customer_id, permission, "Customer")
    if await conn.fetch_one(_EXISTS, {"customer_id": customer_id}) is None:
        raise not_found("Customer")


async def current(conn, customer_id: uuid.UUID) -> dict[str, Any]:
    row = await conn.fetch_one(_CURRENT, {"customer_id": customer_id})
    found = {f: row[f] for f in FIELDS} if row else dict(DEFAULTS)
    return {**found, "customer_id": str(customer_id), "updated_at": row["updated_at"] if row else None}


async def update(conn, ctx, customer_id: uuid.UUID, wanted: dict[str, Any], *, source: str,
                 principal) -> dict[str, Any]:
    """Apply the given fields; a change is written with its history row and event, a
    request that changes nothing writes nothing."""
    before = await current(conn, customer_id)
    diff = {f: {"old": _plain(before[f]), "new": _plain(v)} for f, v in wanted.items() if before[f] != v}
    if not diff:
        return before
    values = {f: before[f] for f in FIELDS} | wanted
    if (values["quiet_start"] is None) != (values["quiet_end"] is None):
        raise invalid("quiet_end" if values["quiet_end"] is None else "quiet_start",
                      "quiet hours need both a start and an end")
    await conn.run(pg_insert(prefs).values(customer_id=customer_id, **values).on_conflict_do_update(
        index_elements=[prefs.c.customer_id], set_={**values, "updated_at": sa.func.now()}))
    await conn.run(sa.insert(changes).values(id=uuid.uuid4(), customer_id=customer_id, actor_kind=principal.kind,
                                             actor_id=principal.id, source=source, changes=diff))
    await publish(conn, ctx, "preferences.changed",
                  {"customer_id": str(customer_id), "source": source, "changes": diff}, actor=principal.id)
    return await current(conn, customer_id)


async def history(conn, customer_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch_all(sa.select(changes).where(changes.c.customer_id == customer_id)
                                .order_by(changes.c.created_at, changes.c.id))
    return [dict(r) for r in rows]


async def refusal(conn, customer_id, channel: str, kind: str, *, now: datetime | None = None) -> str | datetime | None:
    """The ``may_send`` answer: refuse what the customer opted out of; in their quiet hours,
    hold the message until the quiet hours end."""
    if customer_id is None or channel not in ("sms", "email") or kind not in ("marketing", "transactional"):
        return None
    row = await conn.fetch_one(_CURRENT, {"customer_id": customer_id})
    found = row or DEFAULTS
    allowed = found[f"{channel}_{kind}"]
    if kind == "marketing" and allowed:
        allowed = found["marketing_frequency"] != "never"
    if not allowed:
        return f"the customer opted out of {kind} {channel} (preferences)"
    return quiet_until(found, now or utcnow())


def quiet_until(found, now: datetime) -> datetime | None:
    """When the customer's quiet hours that ``now`` falls in end (UTC), or None. The hours
    are wall-clock times in the customer's zone and may run past midnight (21:00-08:00)."""
    start, end = found["quiet_start"], found["quiet_end"]
    if start is None or end is None or start == end:
        return None
    zone = ZoneInfo(found["time_zone"])
    local = now.astimezone(zone)
    at = local.time().replace(tzinfo=None)
    if not (start <= at < end if start < end else at >= start or at < end):
        return None
    day = local.date() if at < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, zone).astimezone(timezone.utc)


async def languages(conn, customer_ids) -> dict[uuid.UUID, str]:
    """The ``customer_languages`` answer: the language of each customer who chose one."""
    rows = await conn.fetch_all(sa.select(prefs.c.customer_id, prefs.c.language).where(
        prefs.c.customer_id.in_(list(customer_ids))))
    return {r["customer_id"]: r["language"] for r in rows}


def _plain(value):
    return value.isoformat() if hasattr(value, "isoformat") else value


async def export_sections(conn, ctx, customer_id: uuid.UUID) -> dict[str, list[dict[str, Any]]]:
    """The customer's preferences and every change to them, for their data export."""
    return {"preferences.current": [await current(conn, customer_id)],
            "preferences.changes": await history(conn, customer_id)}


async def merge_customer(conn, ctx, source_id: uuid.UUID, target_id: uuid.UUID) -> None:
    """A merge: the kept customer's own preferences stand (the duplicate's only when it set
    none); the history of both stays, as proof of consent."""
    kept = await conn.fetch_one(_CURRENT, {"customer_id": target_id})
    if kept is None:
        await conn.run(sa.update(prefs).where(prefs.c.customer_id == source_id).values(customer_id=target_id))
    await conn.run(sa.delete(prefs).where(prefs.c.customer_id == source_id))
    await conn.run(sa.update(changes).where(changes.c.customer_id == source_id).values(customer_id=target_id))


async def erase_customer(conn, ctx, customer_id: uuid.UUID) -> None:
    """An erasure: the current preferences go; the change history (no contact data) stays as
    the proof of consent the law asks for."""
    await conn.run(sa.delete(prefs).where(prefs.c.customer_id == customer_id))
