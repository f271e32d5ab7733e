"""Reading and changing preferences, and the consent answer every sender gets."""
from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from myhibachi.core import check_owner_or, invalid, not_found, publish, tables
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


async def refusal(conn, customer_id, channel: str, kind: str) -> str | None:
    """The ``may_send`` answer: refuse what the customer opted out of."""
    if customer_id is None or channel not in ("sms", "email") or kind not in ("marketing", "transactional"):
        return None
    column = prefs.c[f"{channel}_{kind}"]
    allowed = await conn.scalar(sa.select(column).where(prefs.c.customer_id == customer_id))
    if allowed is None:
        allowed = DEFAULTS[column.name]
    if kind == "marketing" and allowed:
        frequency = await conn.scalar(sa.select(prefs.c.marketing_frequency).where(prefs.c.customer_id == customer_id))
        allowed = frequency != "never"
    return None if allowed else f"the customer opted out of {kind} {channel} (preferences)"


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
