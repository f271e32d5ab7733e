"""The reminder worker: local times across DST, and exactly one hand-over to comms per
reminder under crashes and races (comms then sends each message at most once)."""
from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from myhibachi.core import Plugin, hookimpl
from myhibachi.core.app import create_app
from myhibachi.core.db import Database, utcnow
from myhibachi.core.ports.base import SentMessage
from myhibachi.core.scheduled import pollers
from myhibachi.core.tasks import dispatch_once
from myhibachi.plugins.comms import CommsPlugin
from myhibachi.plugins.comms.service import dispatch_due as send_due
from myhibachi.plugins.reminders import RemindersPlugin
from myhibachi.plugins.reminders.models import booking_reminders
from myhibachi.plugins.reminders.service import dispatch_due
from tests.plugins.reminders.helpers import add_reminder, messages, reminder, reminders_app, sent, work

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


async def test_reminder_text_shows_local_time_across_the_dst_switch(make_app, seed):
    app = reminders_app(make_app)
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
    await work(ctx)
    out = {r["port"]: r for r in await sent(seed.db)}
    expected = f"Monday, March {event_local.day}, {event_local.year} at 6:00 PM EDT"
    assert expected in out["email"]["text"], out["email"]["text"]
    assert expected in out["sms"]["body"]
    assert out["email"]["subject"] == f"Reminder: your hibachi event on Monday, March {event_local.day}, {event_local.year}"

    # the same instant seen from Los Angeles (still on the same switch day) reads 3:00 PM PDT
    west = await seed.booking(customer, starts_at, time_zone="America/Los_Angeles")
    rid = await add_reminder(seed.db, west, day_before)
    assert await dispatch_due(ctx, now=day_before) == 1
    await work(ctx)
    texts = [r["text"] for r in await sent(seed.db) if r["reminder_id"] == str(rid)]
    assert texts and "at 3:00 PM PDT" in texts[0]

    # a winter event just before the switch still reads standard time
    winter_at = datetime.combine(switch - timedelta(days=1), time(18, 0), NEW_YORK).astimezone(timezone.utc)
    winter = await seed.booking(customer, winter_at)
    rid = await add_reminder(seed.db, winter, winter_at - timedelta(hours=2))
    assert await dispatch_due(ctx, now=winter_at - timedelta(hours=2)) == 1
    await work(ctx)
    texts = [r["text"] for r in await sent(seed.db) if r["reminder_id"] == str(rid)]
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
    """An outside SMS adapter that fails a given number of times first."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[dict] = []

    async def send(self, to: str, body: str, *, status_callback=None) -> SentMessage:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("provider unreachable")
        self.sent.append({"to": to, "body": body})
        return SentMessage(id=f"SM{len(self.sent)}", status="queued", to=to)

    def verify_webhook(self, url, params, signature) -> bool:
        return False


async def test_provider_failures_are_retried_by_comms_and_the_reminder_sent_once(make_app, seed):
    port = FlakyPort(failures=2)
    app = make_app([CommsPlugin(retry_seconds=10, max_attempts=3), RemindersPlugin(), AdapterPlugin(port)],
                   flags={"FEATURE_FLAG_BOOKING_REMINDERS": True}, sms_adapter="test")
    ctx = app.state.ctx
    comms = pollers(ctx)["comms"]
    customer = await seed.customer(phone="+12025559999")
    booking = await seed.booking(customer, utcnow() + timedelta(days=2))
    rid = await add_reminder(seed.db, booking, utcnow() - timedelta(seconds=1), channel="sms")

    assert await dispatch_due(ctx) == 1
    assert ((await reminder(seed.db, rid))["status"]) == "sent"  # handed to comms, which owns the retries
    assert await comms(ctx) == 1
    [m] = await messages(seed.db)
    assert (m["status"], m["attempts"], m["last_error"]) == ("queued", 1, "ConnectionError: provider unreachable")
    assert await comms(ctx) == 0  # not before its delay
    assert await send_due(ctx, now=m["next_attempt_at"]) == 1
    assert await send_due(ctx, now=m["next_attempt_at"] + timedelta(seconds=20)) == 1
    [m] = await messages(seed.db)
    assert (m["status"], m["attempts"], m["provider_id"]) == ("sent", 3, "SM1")
    assert port.sent == [{"to": "+12025559999", "body": port.sent[0]["body"]}]
    assert await dispatch_due(ctx) == 0 and (await reminder(seed.db, rid))["attempts"] == 1

    # no address for the only channel: failed at once, with comms' reason
    mute = await seed.customer(phone=None)
    silent = await seed.booking(mute, utcnow() + timedelta(days=2))
    nophone = await add_reminder(seed.db, silent, utcnow() - timedelta(seconds=1), channel="sms")
    assert await dispatch_due(ctx) == 1
    row = await reminder(seed.db, nophone)
    assert (row["status"], row["last_error"]) == ("failed", "sms: the customer has no phone number")


class BlockingPort:
    """An outside email adapter that hangs on its n-th send, like a worker stuck and then killed."""

    def __init__(self, hang_on: int) -> None:
        self.hang_on, self.calls, self.sent = hang_on, 0, []
        self.stuck = asyncio.Event()

    async def send(self, to, subject, text, *, html=None, from_email=None) -> SentMessage:
        self.calls += 1
        if self.calls == self.hang_on:
            self.stuck.set()
            await asyncio.Event().wait()
        self.sent.append(to)
        return SentMessage(id=f"em{self.calls}", status="queued", to=to)

    def verify_webhook(self, payload, signature, timestamp) -> bool:
        return False


async def test_a_worker_killed_mid_send_never_causes_a_second_send(make_app, seed):
    port = BlockingPort(hang_on=3)
    app = make_app([CommsPlugin(concurrency=1), RemindersPlugin(), AdapterPlugin(port)],
                   flags={"FEATURE_FLAG_BOOKING_REMINDERS": True}, email_adapter="test")
    ctx = app.state.ctx
    customer = await seed.customer(email="once@example.com")
    booking = await seed.booking(customer, utcnow() + timedelta(days=2))
    ids = [await add_reminder(seed.db, booking, utcnow() - timedelta(minutes=1)) for _ in range(5)]
    assert await dispatch_due(ctx) == 5

    worker = asyncio.create_task(pollers(ctx)["comms"](ctx))
    await asyncio.wait_for(port.stuck.wait(), 10)
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
    assert sorted(m["status"] for m in await messages(seed.db)) == ["sending"] * 3 + ["sent"] * 2

    # a restarted worker does not send them again...
    port.hang_on = 0
    assert await work(ctx) == 0
    assert len(port.sent) == 2
    # ...and, once the outcome is surely lost, fails them for staff to see in the history
    assert await send_due(ctx, now=utcnow() + timedelta(minutes=16)) == 0
    rows = await messages(seed.db)
    assert sorted(r["status"] for r in rows) == ["failed"] * 3 + ["sent"] * 2
    assert {r["last_error"] for r in rows if r["status"] == "failed"} == {
        "outcome unknown: the worker stopped while sending"}
    assert {(await reminder(seed.db, rid))["status"] for rid in ids} == {"sent"}


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


async def test_a_killed_hand_over_leaves_nothing_and_the_next_sends_each_once(make_app, seed):
    consent = HangingConsent(hang_on=2)
    app = reminders_app(make_app, consent)
    ctx = app.state.ctx
    first, second = await seed.customer(), await seed.customer()
    bookings = [await seed.booking(first, utcnow() + timedelta(days=2)),
                await seed.booking(second, utcnow() + timedelta(days=2))]
    ids = [await add_reminder(seed.db, bookings[i % 2], utcnow() - timedelta(minutes=1)) for i in range(6)]

    worker = asyncio.create_task(dispatch_due(ctx))
    await asyncio.wait_for(consent.stuck.wait(), 10)
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
    assert await messages(seed.db) == []  # the killed batch left nothing behind
    assert {(await reminder(seed.db, rid))["status"] for rid in ids} == {"pending"}

    consent.hang_on = 0
    assert await dispatch_due(ctx) == 6
    await work(ctx)
    assert sorted(r["reminder_id"] for r in await sent(seed.db)) == sorted(map(str, ids))
    assert await work(ctx) == 0


async def test_two_workers_over_1000_due_reminders_send_each_once(make_app, seed, settings, db_url):
    app = reminders_app(make_app, batch_size=50)
    # the second worker has its own pools, as another process would
    other = create_app([CommsPlugin(), RemindersPlugin(batch_size=50)], settings=settings, database=Database(db_url))
    other.state.ctx.flags.start()
    customers = [await seed.customer() for _ in range(10)]
    bookings = [await seed.booking(customers[i % 10], utcnow() + timedelta(days=1, minutes=i)) for i in range(100)]
    due = utcnow() - timedelta(minutes=5)
    rows = [{"id": uuid.uuid4(), "booking_id": bookings[i % 100], "reminder_type": "custom",
             "scheduled_at": due, "next_attempt_at": due, "notification_channel": "email"} for i in range(1000)]
    async with seed.db.transaction() as conn:
        await conn.run(sa.insert(booking_reminders), rows)

    async def hand_over(ctx) -> int:
        done = 0
        while claimed := await dispatch_due(ctx):
            done += claimed
            await asyncio.sleep(0)
        return done

    try:
        first, second = await asyncio.gather(hand_over(app.state.ctx), hand_over(other.state.ctx))
        await asyncio.gather(work(app.state.ctx), work(other.state.ctx))
    finally:
        other.state.ctx.flags.stop()
        await other.state.ctx.db.close()
    assert first + second == 1000 and first > 0 and second > 0
    out = await sent(seed.db)
    assert len(out) == 1000
    assert len({r["reminder_id"] for r in out}) == 1000
    async with seed.db.read() as conn:
        statuses = {r["status"]: r["n"] for r in await conn.fetch_all(
            sa.select(booking_reminders.c.status, sa.func.count().label("n")).group_by(booking_reminders.c.status))}
    assert statuses == {"sent": 1000}


async def test_the_worker_loop_runs_the_poller(make_app, seed):
    app = reminders_app(make_app)
    customer = await seed.customer()
    booking = await seed.booking(customer, utcnow() + timedelta(days=1))
    await add_reminder(seed.db, booking, utcnow() - timedelta(seconds=1))
    assert {"reminders", "comms"} <= set(app.state.ctx.extra["pollers"])
    assert await dispatch_once(app.state.ctx) >= 1  # the reminder (and its message, when comms runs after)
    assert await work(app.state.ctx) <= 1
    assert len(await sent(seed.db)) == 1


async def test_flag_off_hides_routes_skips_handlers_and_holds_reminders(make_app, client_of, seed):
    app = reminders_app(make_app, flags={"FEATURE_FLAG_BOOKING_REMINDERS": False})
    ctx = app.state.ctx
    customer = await seed.customer()
    booking = await seed.booking(customer, utcnow() + timedelta(days=3))
    async with client_of(app, headers=seed.token(customer)) as c:
        r = await c.get(f"/v1/bookings/{booking}/reminders")
    assert r.status_code == 404 and r.json()["flag"] == "FEATURE_FLAG_BOOKING_REMINDERS"
    await seed.publish(ctx, "booking.created", {"booking_id": str(booking), "customer_id": str(customer)},
                       actor=str(customer))
    async with seed.db.read() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(booking_reminders)) == 0

    at = utcnow() - timedelta(minutes=1)
    rid = await add_reminder(seed.db, booking, at)
    assert await dispatch_due(ctx) == 1
    row = await reminder(seed.db, rid)
    assert row["status"] == "pending" and row["attempts"] == 0 and row["next_attempt_at"] > utcnow()
    assert await messages(seed.db) == []


class NoTexts(Plugin):
    """A consent plugin: this customer takes no SMS."""

    name = "no_texts"

    @hookimpl
    def may_send(self, customer_id, channel, kind, conn, ctx):
        return "opted out of SMS" if channel == "sms" else None


async def test_consent_refusals_skip_a_channel(make_app, seed):
    app = reminders_app(make_app, NoTexts())
    customer = await seed.customer(email="quiet@example.com")
    booking = await seed.booking(customer, utcnow() + timedelta(days=1))
    both = await add_reminder(seed.db, booking, utcnow() - timedelta(seconds=1), channel="both")
    sms = await add_reminder(seed.db, booking, utcnow() - timedelta(seconds=1), channel="sms")
    assert await dispatch_due(app.state.ctx) == 2
    await work(app.state.ctx)
    assert [(r["port"], r["reminder_id"]) for r in await sent(seed.db)] == [("email", str(both))]
    assert (await reminder(seed.db, both))["status"] == "sent"
    refused = await reminder(seed.db, sms)
    assert (refused["status"], refused["last_error"]) == ("failed", "sms: opted out of SMS")
