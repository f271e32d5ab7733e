"""What the ml_ops tests share: the flag, the staff scopes, and reading what was stored."""
from __future__ import annotations

import uuid

import sqlalchemy as sa

from myhibachi.core.models import outbox_events

FLAGS = {"FEATURE_FLAG_ML_TRAINING": True}
SCOPES = ["ai.use", "ai.read", "ai.write"]


def key(value: str | None = None) -> dict[str, str]:
    """An ``Idempotency-Key`` header (a fresh one unless ``value``)."""
    return {"Idempotency-Key": value or uuid.uuid4().hex}


async def rows(db, query) -> list[dict]:
    async with db.read() as conn:
        return [dict(r) for r in await conn.fetch_all(query)]


async def published(db, name: str) -> list[dict]:
    """The payloads of the outbox events called ``name``, oldest first."""
    return [r["payload"] for r in await rows(db, sa.select(outbox_events.c.payload)
                                             .where(outbox_events.c.name == name).order_by(outbox_events.c.created_at))]
