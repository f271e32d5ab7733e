"""Domain events through a transactional outbox, delivered at least once per subscriber.

``publish(conn, name, payload)`` writes the event and one delivery row per subscriber in
the caller's transaction, and notifies the worker on commit. The worker's dispatcher claims
due deliveries (``FOR UPDATE SKIP LOCKED``) and runs each handler inside the same
transaction that marks its delivery done, so a handler's database effects happen once even
across retries and crashed workers. A failing handler is retried with backoff and parked
as ``dead`` after ``MAX_ATTEMPTS``; the publishing request never sees the failure.
"""
from __future__ import annotations

import json
import logging
import uuid
from datetime import timedelta
from typing import Any, Awaitable, Callable

import sqlalchemy as sa

from myhibachi.core.db import utcnow
from myhibachi.core.models import event_deliveries, outbox_events

log = logging.getLogger("myhibachi.events")

CHANNEL = "myhibachi_events"
MAX_ATTEMPTS = 8

# The event catalogue: name -> what the payload carries. Payloads are plain JSON data.
EVENTS: dict[str, str] = {
    "customer.created": "customer_id",
    "customer.updated": "customer_id, fields",
    "customer.merged": "source_id, target_id",
    "booking.created": "booking_id, customer_id, starts_at, time_zone, party_size, total_cents, extra",
    "booking.updated": "booking_id, customer_id, changes {field: {old, new}}",
    "booking.cancelled": "booking_id, customer_id, reason",
    "booking.confirmed": "booking_id, customer_id",
    "booking.completed": "booking_id, customer_id",
    "payment.succeeded": "payment_id, booking_id, customer_id, amount_cents, currency",
    "payment.refunded": "payment_id, booking_id, customer_id, amount_cents, currency",
    "payment.failed": "payment_id, booking_id, customer_id, reason",
    "message.sent": "message_id, channel, customer_id",
    "message.opted_out": "channel, address, customer_id",
}

Handler = Callable[[Any, dict[str, Any], Any], Awaitable[None]]


def subscriber_name(plugin_name: str, handler: Handler) -> str:
    return f"{plugin_name}:{handler.__module__}.{handler.__qualname__}"


def add_handlers(ctx, plugin, handlers: dict[str, list[Handler]]) -> None:
    for event, funcs in handlers.items():
        if event not in EVENTS:
            raise ValueError(f"plugin {plugin.name} subscribes to unknown event {event!r}")
        for func in funcs:
            ctx.event_handlers.setdefault(event, []).append((subscriber_name(plugin.name, func), plugin, func))


def register_core_handlers(ctx) -> None:
    """The core subscribes nothing itself today; kept for symmetry with plugins."""


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


async def publish(conn, ctx, name: str, payload: dict[str, Any], *, actor: str | None = None) -> uuid.UUID:
    """Record an event in the caller's transaction; delivery starts after commit."""
    if name not in EVENTS:
        raise ValueError(f"unknown event {name!r}")
    event_id = uuid.uuid4()
    subscribers = [s for s, plugin, _ in ctx.event_handlers.get(name, ()) if ctx.plugins.get(plugin.name)]
    await conn.execute(sa.insert(outbox_events).values(id=event_id, name=name, payload=_json(payload), actor=actor))
    if subscribers:
        await conn.execute(
            sa.insert(event_deliveries),
            [{"event_id": event_id, "subscriber": s, "status": "pending"} for s in subscribers],
        )
        await conn.execute(sa.select(sa.func.pg_notify(CHANNEL, name)))
    else:
        await conn.execute(
            sa.update(outbox_events).where(outbox_events.c.id == event_id).values(dispatched_at=sa.func.now())
        )
    return event_id


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(2 ** attempts, 3600))


async def deliver_due(ctx, *, limit: int = 200) -> int:
    """Run due deliveries once; returns how many were attempted."""
    handlers = {s: (plugin, func) for subs in ctx.event_handlers.values() for s, plugin, func in subs}
    now = utcnow()
    async with ctx.db.begin() as conn:
        rows = (await conn.execute(
            sa.select(event_deliveries.c.event_id, event_deliveries.c.subscriber, event_deliveries.c.attempts,
                      outbox_events.c.name, outbox_events.c.payload, outbox_events.c.actor)
            .join(outbox_events, outbox_events.c.id == event_deliveries.c.event_id)
            .where(event_deliveries.c.status == "pending", event_deliveries.c.next_attempt_at <= now)
            .order_by(event_deliveries.c.next_attempt_at)
            .limit(limit)
            .with_for_update(of=event_deliveries, skip_locked=True)
        )).mappings().all()
        for row in rows:
            key = (event_deliveries.c.event_id == row["event_id"]) & (
                event_deliveries.c.subscriber == row["subscriber"])
            found = handlers.get(row["subscriber"])
            plugin, func = found if found else (None, None)
            if func is None or ctx.plugins.get(plugin.name) is None:
                await conn.execute(sa.update(event_deliveries).where(key).values(
                    status="skipped", last_error="no such subscriber now", done_at=now))
                continue
            if plugin.flag and not ctx.flags.enabled(plugin.flag, {"userId": row["actor"] or "system"}):
                await conn.execute(sa.update(event_deliveries).where(key).values(
                    status="skipped", last_error=f"{plugin.flag} off", done_at=now))
                continue
            event = {"id": str(row["event_id"]), "name": row["name"], "payload": row["payload"],
                     "actor": row["actor"]}
            try:
                async with conn.begin_nested():
                    await func(conn, event, ctx)
                    await conn.execute(sa.update(event_deliveries).where(key).values(
                        status="done", attempts=row["attempts"] + 1, done_at=sa.func.now(), last_error=None))
            except Exception as exc:
                attempts = row["attempts"] + 1
                dead = attempts >= MAX_ATTEMPTS
                log.warning("handler %s failed on %s (attempt %d): %s", row["subscriber"], row["name"], attempts, exc)
                await conn.execute(sa.update(event_deliveries).where(key).values(
                    status="dead" if dead else "pending", attempts=attempts,
                    last_error=f"{type(exc).__name__}: {exc}"[:2000],
                    next_attempt_at=now + backoff(attempts)))
        if rows:
            await conn.execute(sa.text(
                "UPDATE outbox_events e SET dispatched_at = now() WHERE dispatched_at IS NULL AND NOT EXISTS "
                "(SELECT 1 FROM event_deliveries d WHERE d.event_id = e.id AND d.status = 'pending')"
                " AND e.id = ANY(:ids)"), {"ids": list({r["event_id"] for r in rows})})
    return len(rows)


async def failed(ctx, *, limit: int = 100) -> list[dict[str, Any]]:
    """Dead-lettered deliveries, newest first."""
    async with ctx.db.connect() as conn:
        rows = (await conn.execute(
            sa.select(event_deliveries, outbox_events.c.name, outbox_events.c.payload)
            .join(outbox_events, outbox_events.c.id == event_deliveries.c.event_id)
            .where(event_deliveries.c.status == "dead")
            .order_by(event_deliveries.c.next_attempt_at.desc()).limit(limit)
        )).mappings().all()
    return [dict(r) for r in rows]


async def replay(ctx, event_id: uuid.UUID, subscriber: str | None = None) -> int:
    """Put dead deliveries of an event back in the queue; returns how many."""
    async with ctx.db.begin() as conn:
        cond = (event_deliveries.c.event_id == event_id) & (event_deliveries.c.status == "dead")
        if subscriber:
            cond &= event_deliveries.c.subscriber == subscriber
        result = await conn.execute(sa.update(event_deliveries).where(cond).values(
            status="pending", attempts=0, next_attempt_at=sa.func.now()))
        await conn.execute(sa.select(sa.func.pg_notify(CHANNEL, "replay")))
        return result.rowcount
