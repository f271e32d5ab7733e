"""Scheduled work: due rows claimed with SKIP LOCKED, each sent once by concurrent workers."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from tests.db import rolled_back

from myhibachi.core.models import periodic_jobs
from myhibachi.core.scheduled import claim_due, periodic, periodic_jobs_of, pollers, run_periodic
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


# --- periodic jobs ------------------------------------------------------------------------------


def with_jobs(make_app, jobs: dict):
    """An app whose only periodic jobs are ``jobs`` ({name: (job, every seconds)})."""
    ctx = make_app([]).state.ctx
    ctx.extra["periodic"] = {}
    for name, (job, every) in jobs.items():
        periodic(ctx, name, job, every=every)
    return ctx


async def next_runs(database) -> dict:
    async with database.read() as conn:
        rows = await conn.fetch_all(sa.select(periodic_jobs))
    return {r["name"]: r for r in rows}


async def test_two_dispatchers_racing_run_a_due_job_once(make_app, database):
    """Broken on purpose by dropping ``with_for_update(skip_locked=True)`` from the claim: both
    dispatchers ran the job (2 runs)."""
    runs = []

    async def job(conn, ctx):
        runs.append(1)
        await asyncio.sleep(0.05)  # both dispatchers are inside run_periodic at once

    first = with_jobs(make_app, {"probe.tick": (job, 60)})
    second = with_jobs(make_app, {"probe.tick": (job, 60)})
    await run_periodic(first)  # declares the row (due at once) and runs it
    assert runs == [1]
    async with database.transaction() as conn:
        await conn.run(sa.update(periodic_jobs).values(next_run_at=sa.func.now() - sa.text("interval '1 s'")))
    runs.clear()
    counts = await asyncio.gather(*(run_periodic(ctx) for ctx in (first, second, first, second)))
    assert runs == [1] and sorted(counts) == [0, 0, 0, 1]


async def test_a_job_not_yet_due_is_not_run_and_a_run_moves_it_on_by_its_period(make_app, database):
    runs = []

    async def job(conn, ctx):
        runs.append(1)

    ctx = with_jobs(make_app, {"probe.tick": (job, 600)})
    assert await run_periodic(ctx) == 1
    due = datetime.now(timezone.utc) + timedelta(minutes=5)
    async with database.transaction() as conn:
        await conn.run(sa.update(periodic_jobs).values(next_run_at=due))
    assert await run_periodic(ctx) == 0 and runs == [1]

    later = due + timedelta(seconds=3)
    assert await run_periodic(ctx, now=later) == 1 and runs == [1, 1]
    row = (await next_runs(database))["probe.tick"]
    assert row["next_run_at"] == due + timedelta(seconds=600)  # by its period, from when it was due
    assert row["last_run_at"] == later and row["last_error"] is None

    much_later = due + timedelta(seconds=600 * 5 + 7)  # five periods missed: one run, not five
    assert await run_periodic(ctx, now=much_later) == 1 and len(runs) == 3
    assert (await next_runs(database))["probe.tick"]["next_run_at"] == due + timedelta(seconds=600 * 6)


async def test_a_failing_job_is_logged_rolled_back_and_retried_next_period_without_blocking_others(
        make_app, database, caplog):
    ran = []

    async def failing(conn, ctx):
        await conn.run(sa.text("CREATE TABLE probe_half_done (id int)"))  # rolled back with the job
        raise RuntimeError("provider down")

    async def fine(conn, ctx):
        ran.append("fine")

    ctx = with_jobs(make_app, {"probe.a_failing": (failing, 60), "probe.b_fine": (fine, 60)})
    assert await run_periodic(ctx) == 2
    assert ran == ["fine"]
    assert "periodic job probe.a_failing failed" in caplog.text and "provider down" in caplog.text
    rows = await next_runs(database)
    assert rows["probe.a_failing"]["last_error"] == "RuntimeError: provider down"
    assert rows["probe.a_failing"]["next_run_at"] > datetime.now(timezone.utc)  # next period, not at once
    assert rows["probe.b_fine"]["last_error"] is None
    async with database.read() as conn:
        assert await conn.scalar(sa.text("SELECT to_regclass('probe_half_done')")) is None
    assert await run_periodic(ctx) == 0

    async with database.transaction() as conn:
        await conn.run(sa.update(periodic_jobs).values(next_run_at=sa.func.now()))
    assert await run_periodic(ctx) == 2 and ran == ["fine", "fine"]


async def test_cron_jobs_wait_for_their_next_time_and_the_core_and_plugins_declare_theirs(make_app, database):
    from myhibachi.plugins.admin_rbac import plugin as admin_rbac
    from myhibachi.plugins.audit import plugin as audit

    ctx = make_app([admin_rbac, audit]).state.ctx
    jobs = periodic_jobs_of(ctx)
    assert {"core.idempotency_expiry", "core.outbox_retention", "admin_rbac.purge_sessions",
            "audit.verify_chain"} <= set(jobs)
    assert await dispatch_once(ctx) == 0  # the core's jobs ran (nothing to purge); the cron ones wait
    rows = await next_runs(database)
    assert rows["core.outbox_retention"]["last_run_at"] is not None
    verify = rows["audit.verify_chain"]
    assert verify["last_run_at"] is None
    assert (verify["next_run_at"].hour, verify["next_run_at"].minute) == (3, 41)
    assert rows["admin_rbac.purge_sessions"]["next_run_at"].minute == 17
    with pytest.raises(ValueError, match="exactly one of"):
        periodic(ctx, "probe.bad", fine_job, every=1, cron="* * * * *")


async def fine_job(conn, ctx):
    return None
