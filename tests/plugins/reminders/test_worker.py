"""The reminder worker: local times across DST, retries, and at-most-once under crashes and races."""
from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from myhibachi.core import Plugin, hookimpl
from myhibachi.core.app import create_app
from myhibachi.core.db import Database, utcnow
from myhibachi.core.models import offline_outbox
from myhibachi.core.tasks import dispatch_once
from myhibachi.plugins.reminders import RemindersPlugin
from myhibachi.plugins.reminders.models import booking_reminders
from myhibachi.plugins.reminders.service import dispatch_due

FLAG = "FEATURE_FLAG_BOOKING_REMINDERS"
NEW_YORK = ZoneInfo("America/New_York")


def next_us_dst_start(today: date) -> date:
    """The second Sunday of March on or after ``today``: when US clocks spring forward."""
    for year in (today.year, today.year + 1):
        march = date(year, 3, 1)
        first_sunday = march + timedelta(days=(6 - march.weekday()) % 7)
        switch = first_sunday + timedelta(days=7)
        if switch > today:
            return switch
    raise AssertionError("unreachable")


async def add_reminder(db, booking_id, at, *, channel="email", kind="custom") -> uuid.UUID:
    rid = uuid.uuid4()
    async with db.transaction() as conn:
        await conn.run(sa.insert(booking_reminders).values(
            id=rid, booking_id=booking_id, reminder_type=kind, scheduled_at=at, next_attempt_at=at,
            notification_channel=channel))
    return rid


async def reminder(db, rid):
    async with db.read() as conn:
        return await conn.fetch_one(sa.select(booking_reminders).where(booking_reminders.c.id == rid))


async def outbox(db):
    async with db.read() as conn:
        return [dict(r) for r in await conn.fetch_all(sa.select(offline_outbox))]


async def test_reminder_text_shows_local_time_across_the_dst_switch(make_app, seed):
    app = make_app([RemindersPlugin()], flags={FLAG: True})
    ctx = app.state.ctx
    switch = next_us_dst_start(datetime.now(NEW_YORK).date())
    event_local = datetime.combine(switch + timedelta(days=1), time(18, 0), NEW_YORK)  # Monday, 6 PM EDT
    starts_at = event_local.astimezone(timezone.utc)
    assert starts_at.hour == 22  # UTC-4 after the switch; UTC-5 would have made it 23
    customer = await seed.customer(email="dst@example.com")
    booking = await seed.booking(customer, starts_at)
    await seed.publish(ctx, "booking.created", {"booking_id": str(booking), "customer_id": str(customer)})
    day_before = starts_at - timedelta(hours=24)
    # the 24h reminder goes out on the Sunday of the switch, one absolute day earlier
    assert await dispatch_due(ctx, now=day_before - timedelta(seconds=1)) == 0
    assert await dispatch_due(ctx, now=day_before) == 1
    sent = {r["port"]: r["payload"] for r in await outbox(seed.db)}
    expected = f"Monday, March {event_local.day}, {event_local.year} at 6:00 PM EDT"
    assert expected in sent["email"]["text"], sent["email"]["text"]
    assert expected in sent["sms"]["body"]
    assert sent["email"]["subject"] == f"Reminder: your hibachi event on Monday, March {event_local.day}, {event_local.year}"

    # the same instant seen from Los Angeles (still on the same switch day) reads 3:00 PM PDT
    west = await seed.booking(customer, starts_at, time_zone="America/Los_Angeles")
    await add_reminder(seed.db, west, day_before)
    assert await dispatch_due(ctx, now=day_before) == 1
    texts = [r["payload"]["text"] for r in await outbox(seed.db) if r["payload"]["booking_id"] == str(west)]
    assert texts and "at 3:00 PM PDT" in texts[0]

    # a winter event just before the switch still reads standard time
    winter_at = datetime.combine(switch - timedelta(days=1), time(18, 0), NEW_YORK).astimezone(timezone.utc)
    winter = await seed.booking(customer, winter_at)
    await add_reminder(seed.db, winter, winter_at - timedelta(hours=2))
    assert await dispatch_due(ctx, now=winter_at - timedelta(hours=2)) == 1
    texts = [r["payload"]["text"] for r in await outbox(seed.db) if r["payload"]["booking_id"] == str(winter)]
    assert "at 6:00 PM EST" in texts[0]


class AdapterPlugin(Plugin):
    """Offers one outside adapter, named "test", for the SMS and email ports."""

    name = "test_adapter"
    version = "1.0.0"

    def __init__(self, port) -> None:
        self.port = port

    @hookimpl
    def register_adapters(self):
        return {"sms": {"test": lambda ctx: self.port}, "email": {"test": lambda ctx: self.port}}


class FlakyPort:
    """An outside adapter for the SMS port that fails a given number of times first."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[dict] = []

    async def send(self, *, to: str, body: str) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("provider unreachable")
        self.sent.append({"to": to, "body": body})


async def test_failed_sends_are_retried_with_backoff_then_failed(make_app, seed):
    port = FlakyPort(failures=2)
    app = make_app([RemindersPlugin(retry_seconds=10, max_attempts=3), AdapterPlugin(port)], flags={FLAG: True},
                   sms_adapter="test")
    ctx = app.state.ctx
    customer = await seed.customer(phone="+12025559999")
    booking = await seed.booking(customer, utcnow() + timedelta(days=2))
    at = utcnow() + timedelta(hours=1)
    rid = await add_reminder(seed.db, booking, at, channel="sms")

    assert await dispatch_due(ctx, now=at) == 1
    row = await reminder(seed.db, rid)
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert row["last_error"] == "sms: ConnectionError: provider unreachable"
    assert row["next_attempt_at"] == at + timedelta(seconds=10)
    assert await dispatch_due(ctx, now=at + timedelta(seconds=9)) == 0
    assert await dispatch_due(ctx, now=at + timedelta(seconds=10)) == 1
    row = await reminder(seed.db, rid)
    assert (row["status"], row["attempts"]) == ("pending", 2)
    assert row["next_attempt_at"] == at + timedelta(seconds=10 + 20)
    assert await dispatch_due(ctx, now=at + timedelta(seconds=30)) == 1
    row = await reminder(seed.db, rid)
    assert (row["status"], row["attempts"], row["last_error"]) == ("sent", 3, None)
    assert ctx.ports.sms.sent == [{"to": "+12025559999", "body": ctx.ports.sms.sent[0]["body"]}]

    port.failures = 99
    doomed = await add_reminder(seed.db, booking, at, channel="sms")
    for step in (0, 10, 30):
        assert await dispatch_due(ctx, now=at + timedelta(seconds=step)) == 1
    row = await reminder(seed.db, doomed)
    assert (row["status"], row["attempts"]) == ("failed", 3)
    assert "provider unreachable" in row["last_error"]
    assert await dispatch_due(ctx, now=at + timedelta(days=1)) == 0

    # no address for the only channel: failed at once, never retried
    mute = await seed.customer(phone=None)
    silent = await seed.booking(mute, utcnow() + timedelta(days=2))
    nophone = await add_reminder(seed.db, silent, at, channel="sms")
    assert await dispatch_due(ctx, now=at) == 1
    row = await reminder(seed.db, nophone)
    assert (row["status"], row["last_error"]) == ("failed", "no phone number")


class BlockingPort:
    """An outside adapter that hangs on its n-th send, like a worker stuck and then killed."""

    def __init__(self, hang_on: int) -> None:
        self.hang_on, self.calls, self.sent = hang_on, 0, []
        self.stuck = asyncio.Event()

    async def send(self, *, to: str, subject: str, text: str) -> None:
        self.calls += 1
        if self.calls == self.hang_on:
            self.stuck.set()
            await asyncio.Event().wait()
        self.sent.append(to)


async def test_a_worker_killed_mid_send_never_causes_a_second_send(make_app, seed):
    port = BlockingPort(hang_on=3)
    app = make_app([RemindersPlugin(), AdapterPlugin(port)], flags={FLAG: True}, email_adapter="test")
    ctx = app.state.ctx
    customer = await seed.customer(email="once@example.com")
    booking = await seed.booking(customer, utcnow() + timedelta(days=2))
    at = utcnow() - timedelta(minutes=1)
    ids = [await add_reminder(seed.db, booking, at) for _ in range(5)]

    worker = asyncio.create_task(dispatch_due(ctx))
    await asyncio.wait_for(port.stuck.wait(), 10)
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
    statuses = [(await reminder(seed.db, rid))["status"] for rid in ids]
    assert statuses.count("sent") == 2 and statuses.count("sending") == 3

    # a restarted worker does not send them again...
    port.hang_on = 0
    assert await dispatch_due(ctx) == 0
    assert len(port.sent) == 2
    # ...and, once the outcome is surely lost, fails them for staff to see
    assert await dispatch_due(ctx, now=utcnow() + timedelta(minutes=16)) == 0
    rows = [await reminder(seed.db, rid) for rid in ids]
    assert sorted(r["status"] for r in rows) == ["failed"] * 3 + ["sent"] * 2
    assert {r["last_error"] for r in rows if r["status"] == "failed"} == {
        "outcome unknown: the worker stopped while sending"}


class HangingConsent(Plugin):
    """A consent plugin that hangs on its n-th check, inside the worker's transaction."""

    name = "hanging_consent"

    def __init__(self, hang_on: int) -> None:
        self.hang_on, self.calls = hang_on, 0
        self.stuck = asyncio.Event()

    @hookimpl
    async def may_send(self, customer_id, channel, kind, conn, ctx):
        self.calls += 1
        if self.calls == self.hang_on:
            self.stuck.set()
            await asyncio.Event().wait()
        return None


async def test_the_offline_outbox_is_sent_exactly_once_across_a_killed_worker(make_app, seed):
    consent = HangingConsent(hang_on=4)
    app = make_app([RemindersPlugin(), consent], flags={FLAG: True})
    ctx = app.state.ctx
    customer = await seed.customer()
    booking = await seed.booking(customer, utcnow() + timedelta(days=2))
    ids = [await add_reminder(seed.db, booking, utcnow() - timedelta(minutes=1)) for _ in range(6)]

    worker = asyncio.create_task(dispatch_due(ctx))
    await asyncio.wait_for(consent.stuck.wait(), 10)
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
    assert await outbox(seed.db) == []  # the killed batch left nothing behind
    assert {(await reminder(seed.db, rid))["status"] for rid in ids} == {"pending"}

    consent.hang_on = 0
    assert await dispatch_due(ctx) == 6
    assert sorted(r["payload"]["reminder_id"] for r in await outbox(seed.db)) == sorted(map(str, ids))
    assert await dispatch_due(ctx) == 0


async def test_two_workers_over_1000_due_reminders_send_each_once(make_app, seed, settings, db_url):
    app = make_app([RemindersPlugin(batch_size=50)], flags={FLAG: True})
    # the second worker has its own engine and pool, as another process would
    other = create_app([RemindersPlugin(batch_size=50)], settings=settings, database=Database(db_url))
    other.state.ctx.flags.start()
    customers = [await seed.customer() for _ in range(10)]
    bookings = [await seed.booking(customers[i % 10], utcnow() + timedelta(days=1, minutes=i)) for i in range(100)]
    due = utcnow() - timedelta(minutes=5)
    rows = [{"id": uuid.uuid4(), "booking_id": bookings[i % 100], "reminder_type": "custom",
             "scheduled_at": due, "next_attempt_at": due, "notification_channel": "email"} for i in range(1000)]
    async with seed.db.transaction() as conn:
        await conn.run(sa.insert(booking_reminders), rows)

    async def work(ctx) -> int:
        done = 0
        while claimed := await dispatch_due(ctx):
            done += claimed
            await asyncio.sleep(0)
        return done

    try:
        first, second = await asyncio.gather(work(app.state.ctx), work(other.state.ctx))
    finally:
        other.state.ctx.flags.stop()
        await other.state.ctx.db.close()
    assert first + second == 1000 and first > 0 and second > 0
    sent = await outbox(seed.db)
    assert len(sent) == 1000
    assert len({r["payload"]["reminder_id"] for r in sent}) == 1000
    async with seed.db.read() as conn:
        statuses = dict((await conn.execute(sa.select(booking_reminders.c.status, sa.func.count())
                                            .group_by(booking_reminders.c.status))).all())
    assert statuses == {"sent": 1000}


async def test_the_worker_loop_runs_the_poller(make_app, seed):
    app = make_app([RemindersPlugin()], flags={FLAG: True})
    customer = await seed.customer()
    booking = await seed.booking(customer, utcnow() + timedelta(days=1))
    await add_reminder(seed.db, booking, utcnow() - timedelta(seconds=1))
    assert "reminders" in app.state.ctx.extra["pollers"]
    assert await dispatch_once(app.state.ctx) == 1
    assert len(await outbox(seed.db)) == 1


async def test_flag_off_hides_routes_skips_handlers_and_holds_reminders(make_app, client_of, seed):
    app = make_app([RemindersPlugin()], flags={FLAG: False})
    ctx = app.state.ctx
    customer = await seed.customer()
    booking = await seed.booking(customer, utcnow() + timedelta(days=3))
    async with client_of(app, headers=seed.token(customer)) as c:
        r = await c.get(f"/v1/bookings/{booking}/reminders")
    assert r.status_code == 404 and r.json()["flag"] == FLAG
    await seed.publish(ctx, "booking.created", {"booking_id": str(booking), "customer_id": str(customer)},
                       actor=str(customer))
    async with seed.db.read() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(booking_reminders)) == 0

    at = utcnow() - timedelta(minutes=1)
    rid = await add_reminder(seed.db, booking, at)
    assert await dispatch_due(ctx) == 1
    row = await reminder(seed.db, rid)
    assert row["status"] == "pending" and row["attempts"] == 0 and row["next_attempt_at"] > utcnow()
    assert await outbox(seed.db) == []


class NoTexts(Plugin):
    """A consent plugin: this customer takes no SMS."""

    name = "no_texts"

    @hookimpl
    def may_send(self, customer_id, channel, kind, conn, ctx):
        return "opted out of SMS" if channel == "sms" else None


async def test_consent_refusals_skip_a_channel(make_app, seed):
    app = make_app([RemindersPlugin(), NoTexts()], flags={FLAG: True})
    customer = await seed.customer(email="quiet@example.com")
    booking = await seed.booking(customer, utcnow() + timedelta(days=1))
    both = await add_reminder(seed.db, booking, utcnow() - timedelta(seconds=1), channel="both")
    sms = await add_reminder(seed.db, booking, utcnow() - timedelta(seconds=1), channel="sms")
    assert await dispatch_due(app.state.ctx) == 2
    assert [(r["port"], r["payload"]["reminder_id"]) for r in await outbox(seed.db)] == [("email", str(both))]
    assert (await reminder(seed.db, both))["status"] == "sent"
    refused = await reminder(seed.db, sms)
    assert (refused["status"], refused["last_error"]) == ("failed", "sms: opted out of SMS")
