"""The ledger's writes (from payment events) and its reads: history pages and SQL-summed reports."""
from __future__ import annotations

import csv
import io
import uuid
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, UUID, insert as pg_insert

from myhibachi.core import bookings, fetch_page, tables, utcnow
from myhibachi.plugins.payment_history.models import payment_ledger as L


async def location_of(conn, ctx, booking_id: uuid.UUID) -> uuid.UUID | None:
    """The booking's location as its view says it (the locations plugin's field), None
    without that plugin or when the booking has none."""
    row = await conn.fetch_one(sa.select(tables.bookings).where(tables.bookings.c.id == booking_id))
    if row is None:
        return None
    for answer in await ctx.hooks().booking_fields(rows=(bookings.opened(ctx, row),)):
        field = (answer.get("locations") or [None])[0]
        if field:
            value = field.get("location_id") if isinstance(field, dict) else getattr(field, "location_id", None)
            return uuid.UUID(str(value)) if value else None
    return None


async def _record(conn, ctx, event, *entries: tuple[str, int]) -> None:
    """The event's rows, (kind, amount) each, the first keyed by the event's id and the others
    by ids derived from it: a redelivered event changes nothing."""
    p = event["payload"]
    event_id = uuid.UUID(str(event["id"]))
    booking_id = uuid.UUID(str(p["booking_id"]))
    common = dict(payment_id=uuid.UUID(str(p["payment_id"])), booking_id=booking_id,
                  customer_id=uuid.UUID(str(p["customer_id"])), currency=str(p["currency"]).upper(),
                  occurred_at=event.get("created_at") or utcnow(),
                  location_id=await location_of(conn, ctx, booking_id))
    rows = [dict(id=uuid.uuid4(), event_id=event_id if i == 0 else uuid.uuid5(event_id, kind), kind=kind,
                 amount_cents=amount, **common) for i, (kind, amount) in enumerate(entries) if amount > 0]
    if rows:
        await conn.run(pg_insert(L).values(rows).on_conflict_do_nothing(index_elements=["event_id"]))


async def on_charge(conn, event, ctx) -> None:
    """A charge, and the provider's fee on it (carried by the event) as its own row."""
    p = event["payload"]
    await _record(conn, ctx, event, ("charge", int(p["amount_cents"])), ("fee", int(p.get("fee_cents") or 0)))


async def on_refund(conn, event, ctx) -> None:
    await _record(conn, ctx, event, ("refund", int(event["payload"]["amount_cents"])))


async def history(conn, *, customer_id: uuid.UUID | None = None, kind: str | None = None,
                  occurred_from: datetime | None = None, occurred_to: datetime | None = None,
                  cursor: str | None = None, limit: int = 20,
                  fees: bool = True) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the ledger; ``fees=False`` leaves out the provider's fees (the business's, not the customer's)."""
    cond = [] if fees else [L.c.kind != "fee"]
    if customer_id:
        cond.append(L.c.customer_id == customer_id)
    if kind:
        cond.append(L.c.kind == kind)
    if occurred_from:
        cond.append(L.c.occurred_at >= occurred_from)
    if occurred_to:
        cond.append(L.c.occurred_at < occurred_to)
    return await fetch_page(conn, sa.select(L).where(*cond), (L.c.occurred_at, L.c.id), limit=limit, cursor=cursor)


class Ledger:
    """The ledger as the ``PaymentLedger`` service other plugins read it through."""

    async def entries(self, conn, *, payment_ids=None, occurred_from=None, occurred_to=None) -> list[dict[str, Any]]:
        either = []
        if payment_ids:
            either.append(L.c.payment_id == sa.func.any(sa.cast(sa.literal(list(payment_ids)), ARRAY(UUID))))
        if occurred_from is not None and occurred_to is not None:
            either.append(sa.and_(L.c.occurred_at >= occurred_from, L.c.occurred_at < occurred_to))
        if not either:
            return []
        rows = await conn.fetch_all(sa.select(L).where(sa.or_(*either)).order_by(L.c.occurred_at, L.c.id))
        return [dict(r) for r in rows]


def local_bounds(first: date, after_last: date, tz: str) -> tuple[datetime, datetime]:
    """The UTC instants where local ``first`` starts and local ``after_last`` starts (a DST
    day is 23 or 25 hours long here, not 24)."""
    zone = ZoneInfo(tz)
    return datetime.combine(first, time(), zone), datetime.combine(after_last, time(), zone)


def _sum(kind: str):
    return sa.func.coalesce(sa.func.sum(L.c.amount_cents).filter(L.c.kind == kind), 0).label(f"{kind}_cents")


async def totals(conn, first: date, after_last: date, tz: str, group: str, *,
                 by_location: bool = False) -> list[dict[str, Any]]:
    """Gross, refunds, net, fees and count per local ``group`` (day or month) and currency (and
    location, ``by_location``), summed in SQL over ``[first, after_last)`` local days."""
    start, end = local_bounds(first, after_last, tz)
    local = sa.func.timezone(tz, L.c.occurred_at)
    period = sa.func.date_trunc(group, local).label("period")
    keys = [period, *([L.c.location_id] if by_location else []), L.c.currency]
    query = (sa.select(*keys, _sum("charge"), _sum("refund"), _sum("fee"),
                       sa.func.count().filter(L.c.kind == "charge").label("count"))
             .where(L.c.occurred_at >= start, L.c.occurred_at < end)
             .group_by(*keys).order_by(period, *([L.c.location_id.nulls_last()] if by_location else []),
                                        L.c.currency))
    rows = []
    for r in await conn.fetch_all(query):
        gross_c, refunds_c, fees_c = int(r["charge_cents"]), int(r["refund_cents"]), int(r["fee_cents"])
        rows.append({"period": r["period"].date().isoformat() if group == "day" else r["period"].strftime("%Y-%m"),
                     **({"location_id": r["location_id"]} if by_location else {}),
                     "currency": r["currency"], "gross_cents": gross_c, "refunds_cents": refunds_c,
                     "fees_cents": fees_c, "net_cents": gross_c - refunds_c - fees_c, "count": int(r["count"])})
    return rows


def month_range(month: str) -> tuple[date, date]:
    year, mon = (int(x) for x in month.split("-"))
    first = date(year, mon, 1)
    return first, (first + timedelta(days=32)).replace(day=1)


def as_csv(rows: list[dict[str, Any]], by_location: bool = False) -> str:
    out = io.StringIO()
    fields = ["period", *(["location_id"] if by_location else []), "currency", "gross_cents", "refunds_cents",
              "fees_cents", "net_cents", "count"]
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
