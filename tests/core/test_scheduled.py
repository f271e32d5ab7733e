"""Scheduled work: due rows claimed with SKIP LOCKED, each sent once by concurrent workers."""
from __future__ import annotations

import asyncio

import sqlalchemy as sa

from tests.db import rolled_back

from myhibachi.core.scheduled import claim_due, pollers
from myhibachi.core.tasks import dispatch_once
from tests.core.probe import DUE_DDL, ProbePlugin, create_effects_table, due_rows, effects, send_due


async def fill_due(database, n: int, *, future: int = 0) -> None:
    async with database.transaction() as conn:
        await conn.run(sa.text(DUE_DDL))
        await conn.run(sa.text("TRUNCATE probe_due RESTART IDENTITY"))
        await conn.run(sa.text(
            "INSERT INTO probe_due (status, scheduled_at) SELECT 'pending', now() - interval '1 minute'"
            " FROM generate_series(1, :n)"), {"n": n})
        if future:
            await conn.run(sa.text(
                "INSERT INTO probe_due (status, scheduled_at) SELECT 'pending', now() + interval '1 hour'"
                " FROM generate_series(1, :n)"), {"n": future})


async def test_two_workers_claiming_at_once_send_each_due_row_once(make_app, database):
    ctx = make_app([ProbePlugin()]).state.ctx
    await create_effects_table(database)
    await fill_due(database, 1000, future=50)

    async def worker():
        sent = 0
        while n := await send_due(ctx, limit=37):
            sent += n
            await asyncio.sleep(0)
        return sent

    counts = await asyncio.gather(worker(), worker())
    assert sum(counts) == 1000 and all(counts), counts
    async with database.read() as conn:
        sent = await effects(conn, "sent")
        left = await conn.fetch_all("SELECT status, count(*) AS n FROM probe_due GROUP BY status")
    assert sent == {str(i): 1 for i in range(1, 1001)}
    assert {r["status"]: r["n"] for r in left} == {"sent": 1000, "pending": 50}  # rows not yet due stay


async def test_a_claim_rolled_back_leaves_the_rows_for_the_next_worker(make_app, database):
    make_app([])
    await fill_due(database, 10)
    async with rolled_back(database) as conn:
        first = await claim_due(conn, due_rows, limit=4)
        async with database.transaction() as other:
            second = await claim_due(other, due_rows, limit=100)
    async with database.transaction() as conn:
        again = await claim_due(conn, due_rows, limit=100)
    assert len(first) == 4 and len(second) == 6
    assert not {r["id"] for r in first} & {r["id"] for r in second}
    assert len(again) == 10


async def test_pollers_added_by_a_plugin_run_in_the_dispatch_loop(make_app, database):
    ctx = make_app([ProbePlugin()], flags={"FEATURE_FLAG_PROBE": True}).state.ctx
    await create_effects_table(database)
    await fill_due(database, 5)
    assert "probe.due" in pollers(ctx)
    assert await dispatch_once(ctx) == 5
    assert await dispatch_once(ctx) == 0
    async with database.read() as conn:
        assert await effects(conn, "sent") == {str(i): 1 for i in range(1, 6)}
