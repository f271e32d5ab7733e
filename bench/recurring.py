"""Creating a weekly recurring series of 52 instances over HTTP, against 52 single bookings.

    python bench/recurring.py [--rounds 8] [--count 52]

Starts a throwaway embedded PostgreSQL (or uses DATABASE_URL), migrates it and runs the app
with comms, reminders and recurring (horizon and advance booking a year and a week, so every instance of the
series is created at once) in the process, called as an ASGI application. Each round one
customer posts ``FREQ=WEEKLY;COUNT=52`` on its own weekday and hour (no two series share a
slot); then ``count`` single bookings are posted one by one at the same kind of starts. The
series' 52 instances are core bookings made through the core's create path (rules,
capacity, price, a booking.created event each), in one transaction.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
import load  # noqa: E402


def series(i: int, count: int) -> dict:
    first = date.today() + timedelta(days=3 + i % 7)
    return {"recurrence_rule": f"FREQ=WEEKLY;COUNT={count}", "start_date": first.isoformat(),
            "local_time": f"{11 + i // 7 % 9}:00", "time_zone": "America/New_York", "adults": 8,
            "address": "1 Market St", "zip_code": load.ZIP}


def single(i: int, j: int) -> dict:
    day = date.today() + timedelta(days=3 + i % 7 + 7 * j)
    return {"starts_at": f"{day.isoformat()}T{11 + i // 7 % 9:02d}:00:00", "time_zone": "America/New_York",
            "adults": 8, "address": "1 Market St", "zip_code": load.ZIP}


async def main(rounds: int, count: int) -> None:
    from myhibachi.core.app import create_app
    from myhibachi.core.models import bookings, outbox_events
    from myhibachi.plugins.comms import CommsPlugin
    from myhibachi.plugins.recurring import RecurringPlugin
    from myhibachi.plugins.reminders import RemindersPlugin

    settings, _url, db = harness.scratch_database()
    settings = settings.model_copy(update={"booking_capacity": 60, "booking_max_advance_days": 7 * count + 14})
    load.all_flags_on(settings, ["comms", "reminders", "recurring"])
    app = create_app([CommsPlugin(), RemindersPlugin(), RecurringPlugin(horizon_days=7 * count + 7)],
                     settings=settings, database=db)
    ids = await load.seed_customers(db, settings, rounds + 1)
    tokens = load.tokens_for(settings, ids)
    made, singles = [], []
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bench") as c:
        warm = await c.post("/v1/bookings", json=single(62, 0), headers={"Authorization": f"Bearer {tokens[-1]}"})
        assert warm.status_code == 201, warm.text
        for i in range(rounds):
            auth = {"Authorization": f"Bearer {tokens[i]}"}
            t = time.perf_counter()
            r = await c.post("/v1/bookings/recurring", json=series(i, count), headers=auth)
            made.append(time.perf_counter() - t)
            assert r.status_code == 201 and not r.json()["conflicts"], r.text
            t = time.perf_counter()
            for j in range(count):
                r = await c.post("/v1/bookings", json=single(i, j), headers=auth)
                assert r.status_code == 201, r.text
            singles.append(time.perf_counter() - t)
    async with db.read() as conn:
        stored = await conn.scalar(sa.select(sa.func.count()).select_from(bookings))
        events = await conn.scalar(sa.select(sa.func.count()).select_from(outbox_events)
                                   .where(outbox_events.c.name == "booking.created"))
    assert stored == events == 1 + 2 * rounds * count, (stored, events)
    print(f"weekly series of {count} instances, {rounds} rounds, {stored} bookings stored "
          f"({events} booking.created events); {harness.machine()}")
    print("| request | median s | max s | ms per booking |\n|---|---|---|---|")
    for name, took in ((f"POST /v1/bookings/recurring (COUNT={count})", made),
                       (f"{count} x POST /v1/bookings", singles)):
        print(f"| {name} | {statistics.median(took):.2f} | {max(took):.2f} | "
              f"{statistics.median(took) / count * 1000:.1f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--count", type=int, default=52)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.count))
