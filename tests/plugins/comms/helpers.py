"""Shared pieces of the comms tests."""
from __future__ import annotations

import sqlalchemy as sa

from myhibachi.core.events import deliver_due
from myhibachi.core.models import offline_outbox, outbox_events
from myhibachi.testing import offline_payload
from myhibachi.core.scheduled import pollers
from myhibachi.plugins.comms import CommsPlugin
from myhibachi.plugins.comms.models import comms_messages

FLAG = "FEATURE_FLAG_DIRECT_COMMUNICATIONS"


def comms_app(make_app, *, extra_plugins=(), plugin_settings=None, **overrides):
    return make_app([CommsPlugin(**(plugin_settings or {})), *extra_plugins], flags={FLAG: True}, **overrides)


async def run_worker(ctx) -> int:
    """One round of the worker's comms poller, as the dispatch loop runs it."""
    return await pollers(ctx)["comms"](ctx)


async def deliver(ctx) -> None:
    """Run the event handlers of what was published (the hub's webhook.* events among them)."""
    while await deliver_due(ctx):
        pass


async def rows(db, table, *where):
    async with db.read() as conn:
        found = await conn.fetch_all(sa.select(table).where(*where).order_by(table.c.created_at))
    return [dict(r) for r in found]


async def outbox(db, port):
    """What the offline adapter of ``port`` recorded, oldest first, its payloads opened."""
    return [{**r, "payload": offline_payload(port, r["payload"])}
            for r in await rows(db, offline_outbox, offline_outbox.c.port == port)]


async def events(db, name):
    return await rows(db, outbox_events, outbox_events.c.name == name)


async def messages(db):
    return await rows(db, comms_messages)


def key(n="1") -> dict[str, str]:
    return {"Idempotency-Key": f"key-{n}"}
