"""Dispatch N due reminders with one worker through comms and the offline adapters, and time it.

    python bench/reminders_dispatch.py [--count 10000] [--batch 500] [--comms-batch 500] [--channel both]

Starts a throwaway embedded PostgreSQL (or uses DATABASE_URL), migrates it, seeds customers,
bookings and due reminders, then runs the worker's dispatch step (every poller: reminders
hand their messages to comms, comms sends them) until nothing is left, and counts.
Budget (DESIGN.md): 10,000 reminders (20,000 messages with --channel both) within 10 s.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402


async def seed(db, ctx, count: int, channel: str) -> None:
    from myhibachi.core import bookings as booking_service
    from myhibachi.core.customers import sealed
    from myhibachi.core.models import bookings, customers
    from myhibachi.plugins.reminders.models import booking_reminders

    now = datetime.now(timezone.utc)
    people = [uuid.uuid4() for _ in range(max(1, count // 10))]
    events = [uuid.uuid4() for _ in range(max(1, count // 2))]
    async with db.transaction() as conn:
        await conn.run(sa.insert(customers), [
            {"id": c, **sealed(ctx, c, {"email": f"{c.hex}@example.com", "phone": "+12025550000", "name": "Guest",
                                        "address": None})}
            for c in people])
        await conn.run(sa.insert(bookings), [
            {"id": b, "customer_id": people[i % len(people)], "starts_at": now + timedelta(hours=20, minutes=i % 600),
             "time_zone": ("America/New_York", "America/Chicago", "America/Los_Angeles")[i % 3],
             "duration_minutes": 120, "party_size": 10, "adults": 10, "zip_code": "10001", "status": "confirmed",
             "total_cents": 60000, "slot_key": f"s{i}", **booking_service.sealed(ctx, b, {"address": f"{i} Main St"})}
            for i, b in enumerate(events)])
        due = now - timedelta(minutes=1)
        await conn.run(sa.insert(booking_reminders), [
            {"id": uuid.uuid4(), "booking_id": events[i % len(events)], "reminder_type": "custom", "scheduled_at": due,
             "next_attempt_at": due, "notification_channel": channel} for i in range(count)])


async def main(count: int, batch: int, comms_batch: int, channel: str) -> None:
    from myhibachi.core.app import create_app
    from myhibachi.core.flags import TogglesFile
    from myhibachi.core.models import offline_outbox
    from myhibachi.core.tasks import dispatch_once
    from myhibachi.plugins.comms import CommsPlugin
    from myhibachi.plugins.comms.models import comms_messages
    from myhibachi.plugins.reminders import RemindersPlugin
    from myhibachi.plugins.reminders.models import booking_reminders

    settings, url, db = harness.scratch_database()
    async with db.transaction() as conn:
        await conn.run(sa.text("TRUNCATE booking_reminders, comms_messages, offline_outbox, outbox_events, bookings, customers CASCADE"))
    TogglesFile(settings.toggles_path).set("FEATURE_FLAG_BOOKING_REMINDERS", enabled=True, rollout=100)
    comms = CommsPlugin(**({"batch_size": comms_batch} if comms_batch else {}))
    app = create_app([comms, RemindersPlugin(batch_size=batch)], settings=settings, database=db)
    ctx = app.state.ctx
    await seed(db, ctx, count, channel)
    ctx.flags.start()

    started, cpu = time.perf_counter(), time.process_time()
    handled = 0
    while done := await dispatch_once(ctx):
        handled += done
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu

    async with db.read() as conn:
        sent = await conn.scalar(sa.select(sa.func.count()).select_from(booking_reminders)
                                   .where(booking_reminders.c.status == "sent"))
        messages = await conn.scalar(sa.select(sa.func.count()).select_from(comms_messages)
                                     .where(comms_messages.c.status == "sent"))
        recorded = await conn.scalar(sa.select(sa.func.count()).select_from(offline_outbox))
    ctx.flags.stop()
    await db.close()
    print(f"reminders={count} channel={channel} batch={batch} comms_batch={comms.settings.batch_size} claimed={handled} "
          f"sent={sent} messages_sent={messages} outbox_rows={recorded} seconds={elapsed:.2f} worker_cpu={cpu:.2f} "
          f"reminders_per_second={count / elapsed:.0f} messages_per_second={messages / elapsed:.0f}")
    per = 2 if channel == "both" else 1
    assert sent == count and messages == recorded == per * count, "every reminder must be sent exactly once"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500, help="reminders claimed per round")
    parser.add_argument("--comms-batch", type=int, default=None, help="messages claimed per round (comms' default)")
    parser.add_argument("--channel", choices=("email", "sms", "both"), default="both")
    args = parser.parse_args()
    asyncio.run(main(args.count, args.batch, args.comms_batch, args.channel))
