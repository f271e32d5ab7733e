"""Disputes from Stripe's events, and answering them with evidence through the payments port."""
from __future__ import annotations

import hashlib
import json
import logging
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from myhibachi.core import (
    Messaging, PortError, Problem, conflict, fetch_page, invalid, not_found, publish, tables, utcnow, webhooks,
)
from myhibachi.plugins.disputes.models import disputes

ANSWERABLE = ("needs_response", "warning_needs_response")
log = logging.getLogger("myhibachi.disputes")


async def on_stripe_event(conn, event, ctx) -> None:
    type_ = event["payload"]["type"]
    if not type_.startswith("charge.dispute."):
        return
    obj = (await webhooks.data_of(conn, ctx, event)).get("object") or {}
    due = (obj.get("evidence_details") or {}).get("due_by")
    values = {"charge_id": obj.get("charge"), "intent_id": obj.get("payment_intent"),
              "amount_cents": int(obj.get("amount") or 0), "currency": str(obj.get("currency") or "usd").upper()[:3],
              "reason": obj.get("reason"), "status": str(obj.get("status") or "needs_response"),
              "due_by": datetime.fromtimestamp(int(due), timezone.utc) if due else None}
    insert = pg_insert(disputes).values(id=uuid.uuid4(), provider_dispute_id=str(obj["id"]), **values)
    # the provider's status moves on (won, lost); a late "created" does not undo it
    update = {k: insert.excluded[k] for k in values if k != "status"}
    update["status"] = sa.case((disputes.c.status.in_(ANSWERABLE + ("under_review",)), insert.excluded.status),
                               else_=disputes.c.status)
    row = await conn.fetch_one(insert.on_conflict_do_update(
        index_elements=["provider_dispute_id"], set_={**update, "updated_at": sa.func.now()})
        .returning(disputes, sa.literal_column("xmax = 0").label("inserted")))
    if row["inserted"]:
        await publish(conn, ctx, "payment.dispute_opened", {
            "dispute_id": str(row["id"]), "provider_dispute_id": row["provider_dispute_id"],
            "amount_cents": row["amount_cents"], "currency": row["currency"],
            "due_by": row["due_by"].isoformat() if row["due_by"] else None})


async def list_disputes(conn, *, status=None, cursor=None, limit=20):
    cond = [disputes.c.status == status] if status else []
    return await fetch_page(conn, sa.select(disputes).where(*cond), (disputes.c.created_at, disputes.c.id),
                            limit=limit, cursor=cursor)


async def _booking_text(conn, booking_id: uuid.UUID) -> str:
    b = await conn.fetch_one(sa.select(tables.bookings).where(tables.bookings.c.id == booking_id))
    if b is None:
        raise invalid("booking_id", "no such booking")
    return (f"Hibachi catering booking {b['id']} on {b['starts_at'].isoformat()}, status {b['status']}, "
            f"total {b['total_cents']} {b['currency']}")


async def respond(conn, ctx, dispute_id: uuid.UUID, body) -> dict[str, Any]:
    row = await conn.fetch_one(sa.select(disputes).where(disputes.c.id == dispute_id).with_for_update())
    if row is None:
        raise not_found("Dispute")
    if row["status"] not in ANSWERABLE:
        raise conflict(f"a {row['status']} dispute takes no evidence", current_status=row["status"])
    evidence: dict[str, str] = {}
    if body.booking_id:
        evidence["service_date"] = (await _booking_text(conn, body.booking_id))
    if body.signed_terms:
        evidence["refund_policy"] = body.signed_terms
    if body.messages:
        evidence["customer_communication"] = body.messages
    if body.file_ids:
        evidence["uncategorized_file"] = body.file_ids[0]
        if len(body.file_ids) > 1:
            evidence["uncategorized_text"] = "More files: " + ", ".join(body.file_ids[1:])
    digest = hashlib.sha256(json.dumps(evidence, sort_keys=True).encode()).hexdigest()[:16]
    try:
        status = await ctx.ports.payments.submit_dispute_evidence(
            row["provider_dispute_id"], evidence, idempotency_key=f"dispute-{row['id']}-evidence-{digest}")
    except PortError as exc:
        raise Problem(503 if exc.status is None or exc.status >= 500 else 409, "Payment provider refused",
                      str(exc), kind="provider-refused", code=exc.code) from exc
    return dict(await conn.fetch_one(sa.update(disputes).where(disputes.c.id == dispute_id).values(
        status=status or "under_review", evidence=evidence, responded_at=sa.func.now(), updated_at=sa.func.now())
        .returning(disputes)))


_DUE_SOON = (sa.select(disputes).where(disputes.c.reminded_at.is_(None), disputes.c.status.in_(ANSWERABLE),
                                       disputes.c.due_by > sa.bindparam("now"),
                                       disputes.c.due_by <= sa.bindparam("until"))
             .order_by(disputes.c.due_by).with_for_update(skip_locked=True))


async def remind_deadlines(conn, ctx, now: datetime | None = None) -> int:
    """Tell staff of each dispute still waiting for evidence whose deadline is within the
    reminder window: an email to the staff inbox (``notify_email``, through comms) and
    ``payment.dispute_due_soon``, once per dispute (``reminded_at``, in the same transaction).
    Returns how many disputes it reminded of."""
    cfg = ctx.plugins.get("disputes").settings
    now = now or utcnow()
    rows = await conn.fetch_all(_DUE_SOON, {"now": now, "until": now + timedelta(hours=cfg.deadline_reminder_hours)})
    if not rows:
        return 0
    zone = ZoneInfo(ctx.settings.default_time_zone)
    if cfg.notify_email:
        refused = await ctx.service(Messaging, caller="disputes").send_many(conn, [{
            "channel": "email", "to": cfg.notify_email, "actor": "disputes",
            "subject": f"Dispute evidence due {r['due_by'].astimezone(zone):%a %b %d %H:%M %Z}",
            "text": (f"The dispute {r['provider_dispute_id']} of {r['amount_cents'] / 100:,.2f} {r['currency']} "
                     f"({r['reason'] or 'no reason given'}) needs evidence by "
                     f"{r['due_by'].astimezone(zone):%a %b %d %Y %H:%M %Z}; answer it with "
                     f"POST /v1/admin/payments/disputes/{r['id']}/respond."),
            "idempotency_key": f"disputes:{r['id']}:deadline"} for r in rows])
        for r, sent in zip(rows, refused):
            if isinstance(sent, Problem):  # a refused inbox must not repeat the reminder forever
                log.warning("dispute %s: the deadline reminder was refused: %s", r["id"], sent.detail)
    for r in rows:
        await publish(conn, ctx, "payment.dispute_due_soon", {
            "dispute_id": str(r["id"]), "provider_dispute_id": r["provider_dispute_id"],
            "amount_cents": r["amount_cents"], "currency": r["currency"], "due_by": r["due_by"].isoformat()})
    await conn.run(sa.update(disputes).where(disputes.c.id.in_([r["id"] for r in rows])).values(reminded_at=now))
    return len(rows)
