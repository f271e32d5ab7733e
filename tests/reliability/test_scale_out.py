"""Scale-out: two API processes (granian) and two workers on one PostgreSQL and one Redis.

The capacity rule holds across both APIs, one Idempotency-Key sent to both makes one
effect, and two workers deliver each event once. Every process runs every installed
plugin (and the probe subscriber, ``scale_app``); Redis carries the task queue and the
per-caller rate limits of both APIs.
"""
from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa

from myhibachi.core.app import create_app
from myhibachi.core.models import event_deliveries
from myhibachi.core.settings import Settings
from tests.conftest import free_port
from tests.core.conftest import booking_body
from tests.core.probe import create_effects_table, effects
from tests.reliability.conftest import (ROOT, SECRET, add_location, process_env, stop, super_admin_and_customer,
                                        wait_healthy)


def empty_tables(db_url: str) -> None:
    """What ``clean_db`` does after a test, done here once the processes have stopped: with the
    workers running between tests a TRUNCATE could deadlock with their transactions."""
    from myhibachi.core.db import metadata

    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        existing = set(conn.execute(sa.text(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")).scalars())
        names = [t.name for t in metadata.sorted_tables if t.name in existing]
        conn.execute(sa.text("SET LOCAL session_replication_role = replica"))  # past the audit TRUNCATE trigger
        conn.execute(sa.text("TRUNCATE " + ", ".join(f'"{n}"' for n in names) + " CASCADE"))
    engine.dispose()


@pytest.fixture(scope="module")
def cluster(db_url, redis_url, tmp_path_factory):
    """Two APIs (their base URLs) and two workers, all on the session database and Redis. The
    tests of this module share them and leave their rows until the module ends."""
    base = tmp_path_factory.mktemp("scale")
    extra = {"REDIS_URL": redis_url, "MYHIBACHI_RATE_LIMIT_PRINCIPAL": "600"}
    ports = [free_port(), free_port()]
    apis, workers = [], []
    try:
        for i, port in enumerate(ports):
            home = base / f"api{i}"
            home.mkdir()
            apis.append(subprocess.Popen(
                [sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--host", "127.0.0.1",
                 "--port", str(port), "--workers", "1", "--log-level", "warning",
                 "tests.reliability.scale_app:create"],
                env=process_env(home, db_url, **extra), cwd=ROOT, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE))
        for i in range(2):
            home = base / f"worker{i}"
            home.mkdir()
            workers.append(subprocess.Popen(
                [sys.executable, "-m", "tests.reliability.scale_app"], env=process_env(home, db_url, **extra),
                cwd=ROOT, stdout=subprocess.PIPE, stderr=open(home / "stderr.log", "wb"), text=True))
        for port, api in zip(ports, apis):
            wait_healthy(port, api)
        for worker in workers:
            assert worker.stdout.readline().strip() == "ready"
        yield [f"http://127.0.0.1:{p}" for p in ports]
    finally:
        for proc in apis + workers:
            stop(proc)
        empty_tables(db_url)


@pytest.fixture(scope="module")
async def callers(cluster, database, db_url, tmp_path_factory):
    """A super-admin, a customer, and the capacity of a slot: 3 at a location serving zip
    12345 with the locations plugin, the core's own capacity without it."""
    settings = Settings(home=tmp_path_factory.mktemp("callers"), database_url=db_url, secret_key=SECRET)
    await create_effects_table(database)  # before any event, so the probe never fails for want of it
    ctx = create_app([], settings=settings, database=database).state.ctx
    staff, customer, _ = await super_admin_and_customer(database, ctx)
    async with httpx.AsyncClient(base_url=cluster[0], timeout=30) as c:
        made = await add_location(c, staff, events_per_slot=3) == 201
    return staff, customer, 3 if made else settings.booking_capacity


def evening(days: int, hour: int = 18) -> str:
    day = datetime.now().date() + timedelta(days=days)
    return datetime.combine(day, datetime.min.time()).replace(hour=hour).isoformat()


async def bookings_at(database, start: str) -> int:
    async with database.read() as conn:
        return await conn.scalar(sa.text(
            "SELECT count(*) FROM bookings WHERE status <> 'cancelled' AND "
            "starts_at = (CAST(:start AS timestamp) AT TIME ZONE 'America/New_York')"), {"start": start})


async def both(cluster):
    clients = [httpx.AsyncClient(base_url=u, timeout=30) for u in cluster]
    return clients, itertools.cycle(clients)


async def test_the_capacity_rule_holds_across_two_apis(cluster, callers, database):
    """Seen failing when the slot lock (``booking_slots`` rows locked in key order) was skipped:
    both APIs booked past the capacity."""
    staff, customer, capacity = callers
    clients, turn = await both(cluster)
    start = evening(20)
    body = booking_body(starts_at=start)
    try:
        replies = await asyncio.gather(*[next(turn).post("/v1/bookings", json=body, headers=customer)
                                         for _ in range(40)])
    finally:
        for c in clients:
            await c.aclose()
    statuses = sorted(r.status_code for r in replies)
    assert statuses == [201] * capacity + [409] * (40 - capacity), statuses
    assert all(r.headers["content-type"].startswith("application/problem+json") for r in replies
               if r.status_code == 409)
    assert await bookings_at(database, start) == capacity


async def test_one_idempotency_key_sent_to_both_apis_makes_one_booking(cluster, callers, database):
    """Seen failing when the idempotency lock was dropped (the replies differed: requests on
    both APIs booked)."""
    staff, customer, _ = callers
    clients, turn = await both(cluster)
    headers = {**customer, "Idempotency-Key": str(uuid.uuid4())}
    start = evening(21)
    body = booking_body(starts_at=start)

    async def send(client):
        for _ in range(200):
            r = await client.post("/v1/bookings", json=body, headers=headers)
            if r.status_code != 409 or not r.json()["type"].endswith("/idempotency-in-progress"):
                return r
            await asyncio.sleep(0.05)
        raise AssertionError("the key stayed in progress")

    try:
        replies = await asyncio.gather(*[send(next(turn)) for _ in range(20)])
    finally:
        for c in clients:
            await c.aclose()
    assert {r.status_code for r in replies} == {201}
    assert all(r.json() == replies[0].json() for r in replies)
    assert sum("idempotent-replayed" not in r.headers for r in replies) == 1
    assert await bookings_at(database, start) == 1


async def test_two_workers_deliver_each_event_once(cluster, callers, database):
    """Seen failing when the dispatcher's claim dropped SKIP LOCKED (the probe handled events
    twice)."""
    staff, customer, _ = callers
    clients, turn = await both(cluster)
    limit = asyncio.Semaphore(8)

    async def book(days: int):
        async with limit:
            return await next(turn).post("/v1/bookings", json=booking_body(starts_at=evening(days, hour=12)),
                                         headers=customer)

    try:
        made = await asyncio.gather(*[book(3 + i % 160) for i in range(160)])
    finally:
        for c in clients:
            await c.aclose()
    assert {r.status_code for r in made} == {201}, [r.text for r in made if r.status_code != 201][:3]

    async def pending() -> int:
        async with database.read() as conn:
            return await conn.scalar(sa.select(sa.func.count()).where(event_deliveries.c.status == "pending"))

    deadline = time.monotonic() + 60
    while await pending() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.3)
    async with database.read() as conn:
        handled = await effects(conn, "handled")
        events = [str(i) for i in await conn.scalars(sa.text(
            "SELECT id FROM outbox_events WHERE name = 'booking.created' AND payload->>'booking_id' = ANY(:ids)"),
            {"ids": [r.json()["id"] for r in made]})]
        statuses = {r["status"]: r["n"] for r in await conn.fetch_all(
            sa.select(event_deliveries.c.status, sa.func.count().label("n")).group_by(event_deliveries.c.status))}
        retried = await conn.scalar(sa.select(sa.func.count()).where(event_deliveries.c.attempts != 1))
        pids = await conn.scalar(sa.text("SELECT count(DISTINCT pid) FROM probe_effects"))
    assert len(events) == 160 and {e: handled.get(e, 0) for e in events} == {e: 1 for e in events}
    assert set(handled.values()) == {1}  # the earlier tests' events too
    assert set(statuses) == {"done"} and retried == 0, statuses
    assert pids == 2  # both workers took part
