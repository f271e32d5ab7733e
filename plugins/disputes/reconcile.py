"""Reconciliation: the provider's balance transactions against the payments ledger and the
bookings, over a local date range, as a worker job a provider page at a time.

Each step fetches one page after the run's cursor and commits its transactions with the new
cursor, so a worker stopped mid-run resumes after the last page it committed and a page read
twice is stored once. The last step compares, per payment and kind (charge, refund, fee) and
currency, what the provider moved with what the ledger holds, over the range widened by a
slack on both sides (an event recorded a few seconds after midnight is not a mismatch), and
reports every pair that disagrees. It reads and reports; it changes no money and no ledger row,
so running it again answers the same.
"""
from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from myhibachi.core import PaymentLedger, PortError, not_found, publish, tables
from myhibachi.plugins.disputes.models import reconciliation_txns as T
from myhibachi.plugins.disputes.models import reconciliations as R

log = logging.getLogger("myhibachi.disputes")
NAMESPACE = uuid.UUID("0b7f6c1e-5a3d-4f0e-8d2b-3c9a1e6f4b70")
KINDS = {"charge": "charge", "payment": "charge", "refund": "refund", "payment_refund": "refund"}


def _settings(ctx):
    return ctx.plugins.get("disputes").settings


def _uuid(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


async def start(conn, scope: str, key: str, first_day, last_day, tz: str, bounds) -> dict[str, Any]:
    """A run, one per caller and ``Idempotency-Key`` (the same key never starts two)."""
    run_id = uuid.uuid5(NAMESPACE, f"reconcile|{scope}|{key}")
    await conn.run(pg_insert(R).values(id=run_id, requested_by=scope, first_day=first_day, last_day=last_day,
                                       time_zone=tz, range_start=bounds[0], range_end=bounds[1])
                   .on_conflict_do_nothing(index_elements=["id"]))
    return await get(conn, run_id)


async def get(conn, run_id: uuid.UUID) -> dict[str, Any]:
    row = await conn.fetch_one(sa.select(R).where(R.c.id == run_id))
    if row is None:
        raise not_found("Reconciliation")
    return dict(row)


_CLAIM = (sa.select(R).where(R.c.status != "done", R.c.due_at <= sa.func.now())
          .order_by(R.c.created_at).limit(1).with_for_update(skip_locked=True))


async def step(ctx) -> int:
    """Fetch the next provider page of the oldest unfinished run, or compare when none is left."""
    cfg = _settings(ctx)
    slack = timedelta(minutes=cfg.reconcile_slack_minutes)
    async with ctx.db.transaction() as conn:
        run = await conn.fetch_one(_CLAIM)
        if run is None:
            return 0
        try:
            page, cursor = await ctx.ports.payments.balance_transactions(
                created_from=int((run["range_start"] - slack).timestamp()),
                created_to=int((run["range_end"] + slack).timestamp()),
                starting_after=run["cursor"], limit=cfg.reconcile_page_size)
        except PortError as exc:  # the provider is down: the run waits and resumes at its cursor
            log.warning("reconciliation %s: provider failed: %s", run["id"], exc)
            await conn.run(sa.update(R).where(R.c.id == run["id"]).values(
                error=str(exc)[:2000], due_at=sa.func.now() + timedelta(seconds=cfg.reconcile_retry_seconds)))
            return 1
        if page:
            await conn.run(pg_insert(T).values([{
                "run_id": run["id"], "txn_id": t.id, "type": t.type, "amount_cents": t.amount_cents,
                "fee_cents": t.fee_cents, "currency": t.currency.upper()[:3],
                "created": datetime.fromtimestamp(t.created, timezone.utc), "source_id": t.source_id,
                "intent_id": t.intent_id, "payment_id": t.metadata.get("deposit_id"),
                "booking_id": t.metadata.get("booking_id")} for t in page]).on_conflict_do_nothing())
        fetched = await conn.scalar(sa.select(sa.func.count()).select_from(T).where(T.c.run_id == run["id"]))
        values: dict[str, Any] = {"status": "running", "cursor": cursor, "fetched": fetched, "error": None}
        if cursor is None:
            mismatches, matched = await compare(conn, ctx, run, slack)
            values.update(status="done", report=mismatches, matched=matched, finished_at=sa.func.now())
            await publish(conn, ctx, "payment.reconciled", {
                "reconciliation_id": str(run["id"]), "first_day": run["first_day"].isoformat(),
                "last_day": run["last_day"].isoformat(), "matched": matched, "mismatches": len(mismatches)},
                actor=run["requested_by"])
        await conn.run(sa.update(R).where(R.c.id == run["id"]).values(**values))
        return 1


async def compare(conn, ctx, run, slack: timedelta) -> tuple[list[dict[str, Any]], int]:
    """Every (payment, kind, currency) on which the provider and the ledger disagree, and how
    many agree."""
    start, end = run["range_start"], run["range_end"]
    txns = [dict(r) for r in await conn.fetch_all(sa.select(T).where(T.c.run_id == run["id"]))]
    ledger = ctx.service(PaymentLedger, caller="disputes")
    ours = {p for p in (_uuid(t["payment_id"]) for t in txns if t["payment_id"]) if p}
    entries = [e for e in await ledger.entries(conn, payment_ids=sorted(ours), occurred_from=start - slack,
                                               occurred_to=end + slack)
               if start - slack <= e["occurred_at"] < end + slack]

    cells: dict[tuple, dict[str, Any]] = defaultdict(lambda: {"provider_cents": 0, "ledger_cents": 0,
                                                             "provider_ids": [], "ledger_ids": [], "in_range": False})
    info: dict[str, dict[str, Any]] = {}
    for t in txns:
        kind = KINDS.get(t["type"])
        if kind is None:  # payouts, adjustments: not payments the ledger holds
            continue
        pid = str(_uuid(t["payment_id"]) or "") or None
        # the fee the provider kept on a transaction is the ledger's fee row of that payment
        for entry, cents in ((kind, t["amount_cents"]), ("fee", t["fee_cents"])):
            if entry == kind or cents:
                cell = cells[(pid or t["source_id"], entry, t["currency"])]
                cell["provider_cents"] += abs(cents)
                cell["provider_ids"].append(t["txn_id"])
                cell["in_range"] |= start <= t["created"] < end
        info.setdefault(pid or t["source_id"], {"payment_id": pid, "intent_id": t["intent_id"],
                                                "provider_booking_id": t["booking_id"]})
    for e in entries:
        pid = str(e["payment_id"])
        cell = cells[(pid, e["kind"], e["currency"])]
        cell["ledger_cents"] += e["amount_cents"]
        cell["ledger_ids"].append(str(e["id"]))
        cell["in_range"] |= start <= e["occurred_at"] < end
        info.setdefault(pid, {"payment_id": pid, "intent_id": None, "provider_booking_id": None})
        info[pid]["ledger_booking_id"] = str(e["booking_id"])

    booked = {str(b) for b in await conn.scalars(sa.select(tables.bookings.c.id).where(
        tables.bookings.c.id.in_([b for b in (_uuid(i.get("provider_booking_id")) for i in info.values()) if b])))}
    mismatches, matched = [], 0
    for (key, kind, currency), cell in sorted(cells.items(), key=lambda kv: (str(kv[0][0]), kv[0][1], kv[0][2])):
        if not cell["in_range"]:
            continue
        about = info[key]
        found = [k for k, wrong in (
            ("missing_locally", not cell["ledger_ids"]),
            ("missing_at_provider", not cell["provider_ids"]),
            ("amount_differs", cell["ledger_ids"] and cell["provider_ids"]
             and cell["ledger_cents"] != cell["provider_cents"])) if wrong]
        booking = about.get("provider_booking_id") or about.get("ledger_booking_id")
        if cell["provider_ids"] and (booking not in booked or (about.get("ledger_booking_id") or booking) != booking):
            found.append("booking_mismatch")
        if not found:
            matched += 1
            continue
        mismatches.extend({"kind": k, "entry": kind, "currency": currency, "payment_id": about["payment_id"],
                           "booking_id": booking, "intent_id": about["intent_id"],
                           "provider_cents": cell["provider_cents"], "ledger_cents": cell["ledger_cents"],
                           "provider_ids": sorted(cell["provider_ids"]), "ledger_ids": sorted(cell["ledger_ids"])}
                          for k in found)
    return mismatches, matched
