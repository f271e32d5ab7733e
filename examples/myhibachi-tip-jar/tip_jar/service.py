"""The logic of tip_jar, callable without HTTP (routes, tasks and event handlers use it)."""
import uuid

import sqlalchemy as sa

from tip_jar.models import items


async def create_item(conn, label: str) -> dict:
    row = (await conn.execute(
        sa.insert(items).values(id=uuid.uuid4(), label=label).returning(items)
    )).mappings().one()
    return dict(row)


async def list_items(conn, limit: int = 50) -> list[dict]:
    rows = await conn.execute(sa.select(items).order_by(items.c.created_at.desc(), items.c.id).limit(limit))
    return [dict(r) for r in rows.mappings()]


# Domain events this plugin handles: {"booking.created": [async def handler(conn, event, ctx)]}.
HANDLERS: dict[str, list] = {}
