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

from myhibachi.core import fetch_page, utcnow
from myhibachi.plugins.payment_history.models import payment_ledger as L


async def _record(conn, event, *entries: tuple[str, int]) -> None:
    """The event's rows, (kind, amount) each, the first keyed by the event's id and the others
    by ids derived from it: a redelivered event changes nothing."""
    p = event["payload"]
    event_id = uuid.UUID(str(event["id"]))
    common = dict(payment_id=uuid.UUID(str(p["payment_id"])), booking_id=uuid.UUID(str(p["booking_id"])),
                  customer_id=uuid.UUID(str(p["customer_id"])), currency=str(p["currency"]).upper(),
                  occurred_at=event.get("created_at") or utcnow())
    rows = [dict(id=uuid.uuid4(), event_id=event_id if i == 0 else uuid.uuid5(event_id, kind), kind=kind,
                 amount_cents=amount, **common) for i, (kind, amount) in enumerate(entries) if amount > 0]
    if rows:
        await conn.run(pg_insert(L).values(rows).on_conflict_do_nothing(index_elements=["event_id"]))


async def on_charge(conn, event, ctx) -> None:
    """A charge, and the provider's fee on it (carried by the event) as its own row."""
    p = event["payload"]
    await _record(conn, event, ("charge", int(p["amount_cents"])), ("fee", int(p.get("fee_cents") or 0)))


async def on_refund(conn, event, ctx) -> None:
    await _record(conn, event, ("refund", int(event["payload"]["amount_cents"])))


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


async def totals(conn, first: date, after_last: date, tz: str, group: str) -> list[dict[str, Any]]:
    """Gross, refunds, net, fees and count per local ``group`` (day or month) and currency,
    summed in SQL over ``[first, after_last)`` local days."""
    start, end = local_bounds(first, after_last, tz)
    local = sa.func.timezone(tz, L.c.occurred_at)
    period = sa.func.date_trunc(group, local).label("period")
    gross = sa.func.coalesce(sa.func.sum(L.c.amount_cents).filter(L.c.kind == "charge"), 0)
    refunds = sa.func.coalesce(sa.func.sum(L.c.amount_cents).filter(L.c.kind == "refund"), 0)
    fees = sa.func.coalesce(sa.func.sum(L.c.amount_cents).filter(L.c.kind == "fee"), 0)
    query = (sa.select(period, L.c.currency, gross.label("gross_cents"), refunds.label("refunds_cents"),
                       fees.label("fees_cents"),
                       sa.func.count().filter(L.c.kind == "charge").label("count"))
             .where(L.c.occurred_at >= start, L.c.occurred_at < end)
             .group_by(period, L.c.currency).order_by(period, L.c.currency))
    rows = []
    for r in await conn.fetch_all(query):
        gross_c, refunds_c, fees_c = int(r["gross_cents"]), int(r["refunds_cents"]), int(r["fees_cents"])
        rows.append({"period": r["period"].date().isoformat() if group == "day" else r["period"].strftime("%Y-%m"),
                     "currency": r["currency"], "gross_cents": gross_c, "refunds_cents": refunds_c,
                     "fees_cents": fees_c, "net_cents": gross_c - refunds_c - fees_c, "count": int(r["count"])})
    return rows


def month_range(month: str) -> tuple[date, date]:
    year, mon = (int(x) for x in month.split("-"))
    first = date(year, mon, 1)
    return first, (first + timedelta(days=32)).replace(day=1)


def as_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    fields = ["period", "currency", "gross_cents", "refunds_cents", "fees_cents", "net_cents", "count"]
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
