"""Crash safety: workers killed with SIGKILL at random points while dispatching 1,000 due
reminders (plugins/reminders, sent through plugins/comms on the offline adapters) and 1,000
outbox events (core/events.py), restarted until the queue is empty: every reminder sent
once and every event handled once.

The workers are separate processes running the production dispatch loop
(``myhibachi.core.tasks.dispatch_forever``) with the reminders and comms plugins and the probe
subscriber, whose effect table has no unique constraint (a second run would show). Kill
points come from a seeded random generator (``MYHIBACHI_CHAOS_SEED``), printed on failure.
"""
from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from myhibachi.core.db import utcnow
from myhibachi.core.models import event_deliveries, offline_outbox
from myhibachi.plugins.comms.models import comms_messages
from myhibachi.plugins.reminders.models import booking_reminders
from tests.core.probe import create_effects_table, effects, publish_many, ProbePlugin
from tests.plugins.conftest import Seed
from tests.reliability.conftest import ROOT, SECRET

N = 1000
TOTAL = 3 * N  # reminders handed over, their messages sent, events handled
SEED = int(os.environ.get("MYHIBACHI_CHAOS_SEED", "20261124"))

WORKER = """
import asyncio, sys
from myhibachi.core.app import create_app
from myhibachi.core.settings import Settings
from myhibachi.core.tasks import dispatch_forever
from myhibachi.plugins.comms import CommsPlugin
from myhibachi.plugins.reminders import RemindersPlugin
from tests.core.probe import ProbePlugin

settings = Settings(home=sys.argv[1], database_url=sys.argv[2], secret_key=sys.argv[3])
ctx = create_app([ProbePlugin(), CommsPlugin(batch_size=25), RemindersPlugin(batch_size=25)],
                 settings=settings).state.ctx
ctx.flags.start()
print("ready", flush=True)
asyncio.run(dispatch_forever(ctx, interval=0.05))
"""


def start_worker(home: Path, db_url: str) -> subprocess.Popen:
    home.mkdir(parents=True, exist_ok=True)
    # a handler that takes a little time, so kills land inside open transactions
    env = {**os.environ, "PROBE_HANDLER_SLEEP": "0.002", "PYTHONPATH": str(ROOT)}
    env.pop("REDIS_URL", None)
    return subprocess.Popen([sys.executable, "-c", WORKER, str(home), db_url, SECRET], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=open(home / "stderr.log", "ab"), text=True)


async def load(make_app, database, settings) -> list[str]:
    """1,000 due reminders over 100 bookings and 1,000 events for the probe; returns the event ids."""
    await create_effects_table(database)
    ctx = make_app([ProbePlugin()], flags={"FEATURE_FLAG_PROBE": True}).state.ctx
    seed = Seed(database, settings)
    customers = [await seed.customer() for _ in range(10)]
    bookings = [await seed.booking(customers[i % 10], utcnow() + timedelta(days=2, minutes=i)) for i in range(100)]
    due = utcnow() - timedelta(minutes=5)
    async with database.transaction() as conn:
        await conn.run(sa.insert(booking_reminders), [
            {"id": uuid.uuid4(), "booking_id": bookings[i % 100], "reminder_type": "custom", "scheduled_at": due,
             "next_attempt_at": due, "notification_channel": "email"} for i in range(N)])
    return await publish_many(ctx, N)


async def settled(database) -> int:
    async with database.read() as conn:
        sent = await conn.scalar(sa.select(sa.func.count()).where(booking_reminders.c.status == "sent"))
        messages = await conn.scalar(sa.select(sa.func.count()).where(comms_messages.c.status == "sent"))
        done = await conn.scalar(sa.select(sa.func.count()).where(event_deliveries.c.status == "done"))
    return sent + messages + done


async def chaos(tmp_path: Path, db_url: str, database, *, workers: int, kills: int) -> list[str]:
    """Run ``workers`` workers; ``kills`` times, once the queue reaches a random point, SIGKILL
    one of them a random few milliseconds later and start a new one; then let them finish.
    Returns the log of kills (the settled count each one left)."""
    rng = random.Random(SEED + workers)
    targets = sorted(rng.sample(range(50, TOTAL - 100), kills))
    procs = [start_worker(tmp_path / f"w{i}", db_url) for i in range(workers)]
    log = []
    try:
        for k, target in enumerate(targets):
            deadline = time.monotonic() + 60
            while await settled(database) < target and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await asyncio.sleep(rng.uniform(0.0, 0.05))
            victim = rng.randrange(workers)
            procs[victim].kill()
            procs[victim].wait(10)
            log.append(f"kill {k}: worker {victim} at {await settled(database)}/{TOTAL}")
            procs[victim] = start_worker(tmp_path / f"w{victim}-{k}", db_url)
        deadline = time.monotonic() + 90
        while await settled(database) < TOTAL and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # a late duplicate would show now
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    return log


def landed_mid_work(log: list[str]) -> int:
    return sum(0 < int(line.split(" at ")[1].split("/")[0]) < TOTAL for line in log)


async def assert_exactly_once(database, event_ids: list[str], log: list[str]) -> None:
    why = f"seed {SEED}; " + "; ".join(log)
    async with database.read() as conn:
        handled = await effects(conn, "handled")
        deliveries = {r["status"]: r["n"] for r in await conn.fetch_all(
            sa.select(event_deliveries.c.status, sa.func.count().label("n")).group_by(event_deliveries.c.status))}
        statuses = {r["status"]: r["n"] for r in await conn.fetch_all(
            sa.select(booking_reminders.c.status, sa.func.count().label("n")).group_by(booking_reminders.c.status))}
        # what the offline adapter recorded, traced to its reminder by the message's key
        sent = [key.split(":")[1] for key in await conn.scalars(
            sa.select(comms_messages.c.idempotency_key).join(
                offline_outbox, offline_outbox.c.payload["message_id"].astext.cast(sa.Uuid) == comms_messages.c.id))]
        reminder_ids = {str(r) for r in await conn.scalars(sa.select(booking_reminders.c.id))}
    assert deliveries == {"done": N}, why
    assert handled == {i: 1 for i in event_ids}, (why, sum(handled.values()))
    assert statuses == {"sent": N}, why
    assert len(sent) == N and set(sent) == reminder_ids, (why, len(sent), len(set(sent)))


async def test_a_worker_killed_at_random_points_still_delivers_each_once(make_app, database, settings, db_url,
                                                                          tmp_path):
    """Seen failing when the reminders' offline outbox rows were written in a transaction of
    their own (a killed batch's reminders were sent again: 1,025 rows) and when a handler ran
    outside its delivery's transaction (1,010 handler runs for 1,000 events)."""
    event_ids = await load(make_app, database, settings)
    log = await chaos(tmp_path, db_url, database, workers=1, kills=4)
    assert landed_mid_work(log) == 4, log  # the kills really landed while work was in flight
    await assert_exactly_once(database, event_ids, log)


async def test_two_racing_workers_killed_at_random_points_deliver_each_once(make_app, database, settings, db_url,
                                                                            tmp_path):
    """Seen failing when both claims (``claim_due`` and the event dispatcher) dropped their
    ``FOR UPDATE SKIP LOCKED``: the two workers ran the same handlers (1,500 runs for 1,000)."""
    event_ids = await load(make_app, database, settings)
    log = await chaos(tmp_path, db_url, database, workers=2, kills=4)
    assert landed_mid_work(log) == 4, log
    await assert_exactly_once(database, event_ids, log)
    async with database.read() as conn:
        pids = await conn.scalar(sa.text("SELECT count(DISTINCT pid) FROM probe_effects"))
    assert pids >= 2  # both raced over the same queue
