"""The offline outbox: what the offline adapters would have sent, readable by tests and
``myhibachi outbox``."""
from __future__ import annotations

from typing import Any

from myhibachi.core.models import offline_outbox


async def record(conn, port: str, operation: str, payload: dict[str, Any]) -> None:
    await conn.run(offline_outbox.insert().values(port=port, operation=operation, payload=payload))


async def read(db, port: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The newest ``limit`` records (of one port when given), oldest first."""
    query = offline_outbox.select().order_by(offline_outbox.c.created_at.desc(), offline_outbox.c.id).limit(limit)
    if port:
        query = query.where(offline_outbox.c.port == port)
    async with db.read() as conn:
        rows = await conn.fetch_all(query)
    return [dict(r) for r in reversed(rows)]
