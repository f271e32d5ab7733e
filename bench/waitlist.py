"""Availability for a month with 10k bookings and active waitlist holds, with and without the plugin.

    python bench/waitlist.py [--bookings 10000] [--holds 200] [--rounds 30]

Starts a throwaway embedded PostgreSQL (or uses DATABASE_URL), migrates it, seeds bookings
spread over the next month's slots and waitlist offers holding some of them, then times the
core's availability for the 31 days (what GET /v1/availability runs: every plugin's
validate_booking once, booking_limits once with every candidate start) on a read
connection: the core alone, with the waitlist plugin and no hold, and with the holds.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

NY = ZoneInfo("America/New_York")


async def seed(db, ctx, count: int, holds: int, first) -> None:
    from myhibachi.core import bookings as booking_service
    from myhibachi.core.customers import sealed
    from myhibachi.core.models import bookings, customers
    from myhibachi.plugins.waitlist.models import entries, offers

    people = [uuid.uuid4() for _ in range(100)]
    starts = [datetime.combine(first + timedelta(days=d), datetime.min.time(), NY).replace(hour=h)
              for d in range(30) for h in range(11, 20)]
    async with db.transaction() as conn:
        await conn.run(sa.insert(customers), [
            {"id": c, **sealed(ctx, c, {"email": f"{c.hex}@example.com", "phone": "+12025550000", "name": "Guest",
                                        "address": None})} for c in people])
        made = [uuid.uuid4() for _ in range(count)]
        await conn.run(sa.insert(bookings), [
            {"id": b, "customer_id": people[i % 100], "starts_at": starts[i % len(starts)],
             "time_zone": "America/New_York", "duration_minutes": 120, "party_size": 10, "adults": 10,
             "zip_code": "10001", "status": "confirmed", "total_cents": 60000, "slot_key": f"s{i}",
             **booking_service.sealed(ctx, b, {"address": f"{i} Main St"})} for i, b in enumerate(made)])
        waiting = [{"id": uuid.uuid4(), "customer_id": people[i % 100], "requested_date": starts[i * 7 % len(starts)].date(),
                    "requested_time": f"{i}", "time_zone": "America/New_York", "party_size": 6, "status": "offered",
                    "expires_at": starts[-1]} for i in range(holds)]
        if waiting:
            await conn.run(sa.insert(entries), waiting)
            await conn.run(sa.insert(offers), [
                {"id": uuid.uuid4(), "entry_id": e["id"], "customer_id": e["customer_id"],
                 "starts_at": starts[i * 7 % len(starts)], "ends_at": starts[i * 7 % len(starts)] + timedelta(hours=2),
                 "time_zone": "America/New_York", "pools": [], "expires_at": starts[-1]} for i, e in enumerate(waiting)])


async def timed(ctx, db, first, rounds: int) -> tuple[float, int]:
    from myhibachi.core import Principal, bookings

    took, slots = [], 0
    async with db.read() as conn:
        for _ in range(rounds + 3):
            t = time.perf_counter()
            got = await bookings.availability(conn, ctx, Principal("anonymous"), start_day=first,
                                              end_day=first + timedelta(days=30), party_size=6,
                                              time_zone="America/New_York")
            took.append(time.perf_counter() - t)
            slots = sum(s.remaining for s in got.slots)
    return statistics.median(took[3:]) * 1000, slots


async def main(count: int, holds: int, rounds: int) -> None:
    from myhibachi.core.app import create_app
    from myhibachi.core.flags import TogglesFile
    from myhibachi.plugins.comms import CommsPlugin
    from myhibachi.plugins.waitlist import WaitlistPlugin
    from myhibachi.plugins.waitlist.models import offers

    settings, url, db = harness.scratch_database()
    settings = settings.model_copy(update={"booking_capacity": 60})
    TogglesFile(settings.toggles_path).set("FEATURE_FLAG_BOOKING_WAITLIST", enabled=True, rollout=100)
    first = (datetime.now(timezone.utc) + timedelta(days=3)).astimezone(NY).date()
    core = create_app([], settings=settings, database=db)
    with_plugin = create_app([CommsPlugin(), WaitlistPlugin()], settings=settings, database=db)
    await seed(db, core.state.ctx, count, holds, first)
    with_plugin.state.ctx.flags.start()
    rows = [("core alone", *await timed(core.state.ctx, db, first, rounds))]
    rows.append((f"waitlist, {holds} holds", *await timed(with_plugin.state.ctx, db, first, rounds)))
    async with db.transaction() as conn:
        await conn.run(sa.update(offers).values(status="lapsed"))
    rows.append(("waitlist, no hold", *await timed(with_plugin.state.ctx, db, first, rounds)))
    print(f"{count} bookings over 30 days, availability for 31 days (median of {rounds})")
    print("| app | ms per query | free places |\n|---|---|---|")
    for name, ms, free in rows:
        print(f"| {name} | {ms:.1f} | {free} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bookings", type=int, default=10_000)
    parser.add_argument("--holds", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(main(args.bookings, args.holds, args.rounds))
