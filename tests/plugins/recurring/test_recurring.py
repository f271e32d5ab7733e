"""Recurring series over HTTP: the rule's checks, instances made by the core's create path
(capacity, events), DST, conflicts, this-and-following updates, cancellation and the
rolling horizon."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from myhibachi.core import tables
from myhibachi.core.db import utcnow
from myhibachi.core.models import outbox_events
from myhibachi.plugins.comms import CommsPlugin
from myhibachi.plugins.recurring import RecurringPlugin
from myhibachi.plugins.recurring.models import instances, patterns
from myhibachi.plugins.reminders import RemindersPlugin
from myhibachi.plugins.reminders.models import booking_reminders

LA = ZoneInfo("America/Los_Angeles")
FLAGS = {"FEATURE_FLAG_RECURRING_BOOKINGS": True, "FEATURE_FLAG_BOOKING_REMINDERS": True,
         "FEATURE_FLAG_DIRECT_COMMUNICATIONS": True}
REQUESTS = "Gate code 4417; nut allergy at the table"


def app_of(make_app, horizon_days=400, flags=FLAGS):
    return make_app([CommsPlugin(), RemindersPlugin(), RecurringPlugin(horizon_days=horizon_days)], flags=flags,
                    booking_max_advance_days=420)


def dst_week() -> date:
    """A Thursday two weeks before the next change of Los Angeles' UTC offset (at least a
    week from now), so a weekly series of four runs across it."""
    day = utcnow().date() + timedelta(days=21)
    while (datetime.combine(day, time(12), LA).utcoffset()
           == datetime.combine(day + timedelta(days=1), time(12), LA).utcoffset()):
        day += timedelta(days=1)
    day -= timedelta(days=14)
    return day - timedelta(days=(day.weekday() - 3) % 7)


def body(start: date, **kw):
    return {"recurrence_rule": "FREQ=WEEKLY;COUNT=4", "start_date": start.isoformat(), "local_time": "19:00",
            "time_zone": "America/Los_Angeles", "adults": 6, "address": "1 Main St, Springfield", **kw}


async def rows(db, query):
    async with db.read() as conn:
        return [dict(r) for r in await conn.fetch_all(query)]


async def series_bookings(db, pattern_id):
    b = tables.bookings
    return await rows(db, sa.select(instances.c.occurrence_date, b).join(b, b.c.id == instances.c.booking_id)
                      .where(instances.c.pattern_id == pattern_id).order_by(instances.c.occurrence_date))


async def test_booking_recurring_events(make_app, client_of, customer, staff, drain, clean_db, rotate_pii):
    """A weekly series over a DST change: an unbounded or unreadable rule is a 422 naming the
    field, a full slot refuses the whole series (listing the date, nothing written) unless
    conflicts are skipped; each instance is a core booking at 7 pm local, priced, published
    and reminded; a change or cancellation of the series leaves the instance that took place
    alone. After a PII key rotation the pattern's address and special requests read back as
    planted, under the new key only (red without the plugin's rotate_keys)."""
    app = app_of(make_app)
    ana, bo = await customer(email="ana@example.com"), await customer(email="bo@example.com")
    start = dst_week()
    third = start + timedelta(days=14)
    async with client_of(app) as c:
        unbounded = await c.post("/v1/bookings/recurring", json=body(start, recurrence_rule="FREQ=WEEKLY"),
                                 headers=ana.headers)
        garbage = await c.post("/v1/bookings/recurring", json=body(start, recurrence_rule="FREQ=SOMETIMES"),
                               headers=ana.headers)
        # the third occurrence's slot is full (two chef teams): the series is refused, listing it
        for _ in range(2):
            full = await c.post("/v1/bookings", headers=bo.headers, json={
                "starts_at": datetime.combine(third, time(19)).isoformat(), "time_zone": "America/Los_Angeles",
                "adults": 4, "address": "2 Side St"})
            assert full.status_code == 201, full.text
        refused = await c.post("/v1/bookings/recurring", json=body(start), headers=ana.headers)
    assert unbounded.status_code == 422 and unbounded.json()["errors"][0]["field"] == "body.recurrence_rule"
    assert garbage.status_code == 422 and garbage.json()["errors"][0]["field"] == "body.recurrence_rule"
    assert refused.status_code == 409, refused.text
    assert [x["date"] for x in refused.json()["conflicts"]] == [third.isoformat()]
    assert await rows(clean_db, sa.select(patterns)) == []
    assert len(await rows(clean_db, sa.select(tables.bookings))) == 2  # nothing half-written

    async with client_of(app, headers=ana.headers) as c:
        made = await c.post("/v1/bookings/recurring", json=body(start, skip_conflicts=True, special_requests=REQUESTS))
        assert made.status_code == 201, made.text
        pid = made.json()["id"]
        page1 = await c.get(f"/v1/bookings/recurring/{pid}/instances", params={"limit": 2})
        page2 = await c.get(f"/v1/bookings/recurring/{pid}/instances",
                            params={"limit": 2, "cursor": page1.json()["next_cursor"]})
    assert [x["date"] for x in made.json()["conflicts"]] == [third.isoformat()]
    dates = [start, start + timedelta(days=7), start + timedelta(days=21)]
    listed = page1.json()["items"] + page2.json()["items"]
    assert [date.fromisoformat(i["occurrence_date"]) for i in listed] == dates and page2.json()["next_cursor"] is None
    stored = await series_bookings(clean_db, pid)
    assert [s["occurrence_date"] for s in stored] == dates
    # 7 pm local on both sides of the DST change, so the UTC hour moves
    assert {s["starts_at"].astimezone(LA).time() for s in stored} == {time(19)}
    assert len({s["starts_at"].astimezone(ZoneInfo("UTC")).hour for s in stored}) == 2
    assert {(s["customer_id"], s["party_size"], s["status"]) for s in stored} == {(ana.id, 6, "pending")}
    assert all(s["total_cents"] > 0 for s in stored)  # priced by the core
    created = await rows(clean_db, sa.select(outbox_events.c.payload).where(outbox_events.c.name == "booking.created"))
    assert {str(s["id"]) for s in stored} <= {e["payload"]["booking_id"] for e in created}
    await drain(app)
    reminded = await rows(clean_db, sa.select(booking_reminders.c.booking_id).distinct())
    assert {s["id"] for s in stored} <= {r["booking_id"] for r in reminded}

    # the first instance took place: updates and cancellation leave it alone
    first = stored[0]["id"]
    async with client_of(app, headers=await staff(["bookings.write"])) as c:
        assert (await c.post(f"/v1/bookings/{first}/confirm")).status_code == 200
        assert (await c.post(f"/v1/bookings/{first}/complete")).status_code == 200
    async with client_of(app, headers=ana.headers) as c:
        changed = await c.put(f"/v1/bookings/recurring/{pid}", json={"adults": 8})
        assert changed.status_code == 200, changed.text
        after = await series_bookings(clean_db, pid)
        assert [(s["occurrence_date"], s["party_size"]) for s in after] == [(dates[0], 6), (dates[1], 8),
                                                                            (dates[2], 8)]
        assert after[0]["id"] == first and after[0]["status"] == "completed"
        old = {s["id"] for s in stored[1:]}
        cancelled = await rows(clean_db, sa.select(tables.bookings.c.status).where(tables.bookings.c.id.in_(old)))
        assert {r["status"] for r in cancelled} == {"cancelled"}
        await drain(app)  # the old instances' reminders follow their booking.cancelled
        old_reminders = await rows(clean_db, sa.select(booking_reminders.c.status)
                                   .where(booking_reminders.c.booking_id.in_(old)))
        assert old_reminders and {r["status"] for r in old_reminders} == {"cancelled"}

        gone = await c.delete(f"/v1/bookings/recurring/{pid}")
        got = await c.get(f"/v1/bookings/recurring/{pid}")
    assert gone.status_code == 200 and got.json()["status"] == "cancelled"
    final = await rows(clean_db, sa.select(tables.bookings.c.id, tables.bookings.c.status)
                       .where(tables.bookings.c.id.in_([s["id"] for s in after])))
    assert {r["id"]: r["status"] for r in final} == {after[0]["id"]: "completed", after[1]["id"]: "cancelled",
                                                      after[2]["id"]: "cancelled"}
    await drain(app)
    reminders = await rows(clean_db, sa.select(booking_reminders.c.status)
                           .where(booking_reminders.c.booking_id.in_([after[1]["id"], after[2]["id"]])))
    assert reminders and {r["status"] for r in reminders} == {"cancelled"}

    again, counts = await rotate_pii(app)
    assert counts["plugin row(s)"] == 1  # the one pattern
    async with client_of(again, headers=ana.headers) as c:
        read = await c.get(f"/v1/bookings/recurring/{pid}")
    assert read.status_code == 200, read.text
    assert (read.json()["address"], read.json()["special_requests"]) == ("1 Main St, Springfield", REQUESTS)


async def test_rolling_horizon_bounds_rows_and_the_periodic_job_extends_it(make_app, client_of, customer, drain,
                                                                          clean_db):
    ana = await customer(email="ana@example.com")
    start = utcnow().date() + timedelta(days=5)
    async with client_of(app_of(make_app, horizon_days=30), headers=ana.headers) as c:
        made = await c.post("/v1/bookings/recurring", json=body(start, recurrence_rule="FREQ=WEEKLY;COUNT=30"))
    assert made.status_code == 201, made.text
    pid = made.json()["id"]
    first = await series_bookings(clean_db, pid)
    assert 3 <= len(first) <= 5 and all(s["occurrence_date"] <= utcnow().date() + timedelta(days=30) for s in first)
    # a longer horizon: the worker's periodic job rolls the series forward, without repeating any
    await drain(app_of(make_app, horizon_days=60))
    later = await series_bookings(clean_db, pid)
    assert len(later) > len(first) and len({s["occurrence_date"] for s in later}) == len(later)
    assert all((b - a).days == 7 for a, b in zip([s["occurrence_date"] for s in later],
                                                 [s["occurrence_date"] for s in later][1:]))


async def test_recurring_routes_are_gated_and_patterns_private(make_app, client_of, customer):
    ana, bo = await customer(email="ana@example.com"), await customer(email="bo@example.com")
    start = utcnow().date() + timedelta(days=5)
    app = app_of(make_app)
    async with client_of(app) as c:
        made = await c.post("/v1/bookings/recurring", json=body(start, recurrence_rule="FREQ=DAILY;COUNT=2"),
                            headers=ana.headers)
        other = await c.get(f"/v1/bookings/recurring/{made.json()['id']}", headers=bo.headers)
        zone = await c.post("/v1/bookings/recurring", json=body(start, time_zone="Mars/Olympus"), headers=ana.headers)
    assert made.status_code == 201 and other.status_code == 404
    assert zone.status_code == 422 and zone.json()["errors"][0]["field"] == "body.time_zone"
    off = app_of(make_app, flags={**FLAGS, "FEATURE_FLAG_RECURRING_BOOKINGS": False})
    async with client_of(off, headers=ana.headers) as c:
        gated = await c.post("/v1/bookings/recurring", json=body(start))
    assert gated.status_code == 404 and gated.json()["flag"] == "FEATURE_FLAG_RECURRING_BOOKINGS"
