"""Scheduled work, claimed by workers without loss or repeats: due rows and periodic jobs.

Two shapes, one mechanism (a row claimed ``FOR UPDATE SKIP LOCKED`` by the worker's
dispatch loop), so nothing periodic needs a process of its own or runs twice across workers:

- **Due rows**: "do X at time T". A plugin keeps them in its own table (``status`` pending,
  a due-time column) and registers a poller with ``ctx.add_poller``. ``claim_due`` locks a
  batch of due rows inside the caller's transaction: the caller performs the effect and
  marks each row done in that same transaction, so a crash rolls the claim back and a
  second worker never gets the same row.
- **Periodic jobs**: "run X every N seconds" or "at this cron schedule", declared with
  ``periodic``. Each job has a ``periodic_jobs`` row holding its next run time. A worker
  claims a due row, runs the job on that transaction (in a savepoint) and moves the next
  run on by the period before committing: the job's writes and the new next run commit
  together, a second worker skips the locked row and then sees it not due, and a worker
  killed mid-job rolls back so the next one runs that period.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Awaitable, Callable

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, insert as pg_insert

from myhibachi.core.db import utcnow
from myhibachi.core.models import periodic_jobs

log = logging.getLogger("myhibachi.scheduled")

Poller = Callable[[Any], Awaitable[int]]
Job = Callable[[Any, Any], Awaitable[Any]]


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


# --- periodic jobs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Periodic:
    name: str
    job: Job
    every: timedelta | None
    cron: str | None

    def next_after(self, due: datetime, now: datetime) -> datetime:
        """The first run time after ``now``: ``due`` moved on by whole periods (missed periods
        run once, not once each), or the cron schedule's next time."""
        if self.every is not None:
            missed = max(0, (now - due) // self.every)
            return due + (missed + 1) * self.every
        from apscheduler.triggers.cron import CronTrigger  # the flags client imports it already

        trigger = CronTrigger.from_crontab(self.cron, timezone="UTC")
        return trigger.get_next_fire_time(None, now + timedelta(seconds=1))


def periodic(ctx, name: str, job: Job, *, every: float | timedelta | None = None, cron: str | None = None) -> None:
    """Run ``await job(conn, ctx)`` every ``every`` seconds, or at the times of ``cron``
    (five fields, UTC: ``"41 3 * * *"`` is 03:41 daily), in the worker's dispatch loop.

    ``conn`` is the transaction that claimed the job's row; the job's writes commit with its
    next run time. A job that raises is logged, its writes rolled back, its error kept in
    ``periodic_jobs.last_error``, and it runs again next period; the other jobs run as usual.
    Declare jobs from the ``register_tasks`` hook; ``name`` names the job's row, so prefix it
    with the plugin's name. A job first runs when a worker first sees it (``every``) or at its
    next cron time.
    """
    if (every is None) == (cron is None):
        raise ValueError(f"periodic job {name}: give exactly one of every= and cron=")
    if cron is not None:
        from apscheduler.triggers.cron import CronTrigger

        CronTrigger.from_crontab(cron, timezone="UTC")  # a bad schedule fails at start-up
    if every is not None and not isinstance(every, timedelta):
        every = timedelta(seconds=every)
    ctx.extra.setdefault("periodic", {})[name] = Periodic(name, job, every, cron)


def periodic_jobs_of(ctx) -> dict[str, Periodic]:
    return ctx.extra.get("periodic", {})


_NAMES = sa.bindparam("names", type_=ARRAY(sa.String))
_CLAIM = (sa.select(periodic_jobs.c.name, periodic_jobs.c.next_run_at)
          .where(periodic_jobs.c.name == sa.any_(_NAMES), periodic_jobs.c.next_run_at <= sa.bindparam("now"))
          .order_by(periodic_jobs.c.next_run_at)
          .limit(1)
          .with_for_update(skip_locked=True))
_RAN = (sa.update(periodic_jobs).where(periodic_jobs.c.name == sa.bindparam("job"))
        .values(next_run_at=sa.bindparam("next_run_at"), last_run_at=sa.bindparam("now"),
                last_error=sa.bindparam("error")))
_DECLARE = pg_insert(periodic_jobs).on_conflict_do_nothing(index_elements=["name"])


async def run_periodic(ctx, *, now: datetime | None = None) -> int:
    """Run every declared periodic job that is due and not claimed by another worker; returns
    how many ran."""
    jobs = periodic_jobs_of(ctx)
    if not jobs:
        return 0
    now = now or utcnow()
    if not ctx.extra.get("periodic_declared"):
        async with ctx.db.transaction() as conn:
            await conn.run(_DECLARE, [
                {"name": p.name, "next_run_at": now if p.every is not None else p.next_after(now, now)}
                for p in jobs.values()])
        ctx.extra["periodic_declared"] = True
    ran = 0
    while True:
        async with ctx.db.transaction() as conn:
            row = await conn.fetch_one(_CLAIM, {"names": list(jobs), "now": now})
            if row is None:
                return ran
            job = jobs[row["name"]]
            error = None
            try:
                async with conn.savepoint():
                    await job.job(conn, ctx)
            except Exception as exc:
                log.exception("periodic job %s failed; it runs again next period", job.name)
                error = f"{type(exc).__name__}: {exc}"
            await conn.run(_RAN, {"job": job.name, "next_run_at": job.next_after(row["next_run_at"], now),
                                  "now": now, "error": error})
        ran += 1
