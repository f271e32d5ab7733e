"""Scheduled work: rows that say "do X at time T", claimed by workers without loss or repeats.

A plugin keeps its due rows in its own table (``status`` pending, a due-time column) and
registers a poller with ``ctx.add_poller``. ``claim_due`` locks a batch of due rows with
``FOR UPDATE SKIP LOCKED`` inside the caller's transaction: the caller performs the effect
and marks each row done in that same transaction, so a crash rolls the claim back and a
second worker never gets the same row.
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable

import sqlalchemy as sa

from myhibachi.core.db import utcnow

Poller = Callable[[Any], Awaitable[int]]


async def claim_due(conn, table: sa.Table, *, due_column: str = "scheduled_at", status_column: str = "status",
                    pending: str = "pending", limit: int = 500, now=None) -> list[dict[str, Any]]:
    """Lock and return up to ``limit`` due rows of ``table`` in the caller's transaction."""
    now = now or utcnow()
    rows = await conn.fetch_all(
        sa.select(table)
        .where(table.c[status_column] == pending, table.c[due_column] <= now)
        .order_by(table.c[due_column])
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [dict(r) for r in rows]


def add_poller(ctx, name: str, poller: Poller) -> None:
    """Run ``poller(ctx)`` in the worker's dispatch loop; it returns how many rows it handled."""
    ctx.extra.setdefault("pollers", {})[name] = poller


def pollers(ctx) -> dict[str, Poller]:
    return ctx.extra.get("pollers", {})
