"""Availability: bookable slots from the rules and the same checks create uses."""
from __future__ import annotations

import asyncio
import dataclasses
import uuid
from contextlib import asynccontextmanager
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from myhibachi.core import bookings as svc, hookimpl
from myhibachi.core.auth import Principal
from myhibachi.core.db import Database
from myhibachi.core.errors import Problem
from myhibachi.core.models import bookings, customers
from myhibachi.core.settings import Settings

from myhibachi.core.hookspecs import Refusal, SlotLimit

from .booking_plugin import FLAG, BookingHooks
from .conftest import booking_body, local_day, local_start

NY = "America/New_York"


def starts(body: dict) -> list[str]:
    """The slots' local wall-clock starts (each slot's ``local_start`` carries its offset too)."""
    return [s["local_start"][:19] for s in body["slots"]]


async def test_slots_follow_hours_and_capacity(make_app, client_of, add_customer):
    _, auth = await add_customer()
    app = make_app([])
    day = local_day(7).isoformat()
    async with client_of(app) as c:
        empty = (await c.get("/v1/availability", params={"from": day, "to": day, "time_zone": NY})).json()
        booked = await c.post("/v1/bookings", json=booking_body(starts_at=local_start(hour=17)), headers=auth)
        after = (await c.get("/v1/availability", params={"from": day, "to": day, "time_zone": NY,
                                                         "party_size": 12})).json()
    assert booked.status_code == 201
    # 11:00 to 20:00: a two-hour event must end by 22:00.
    assert starts(empty) == [f"{day}T{h:02d}:00:00" for h in range(11, 21)]
    assert empty["slots"][0]["local_start"] == f"{day}T11:00:00-05:00"  # December in New York
    assert {s["remaining"] for s in empty["slots"]} == {2} and empty["time_zone"] == NY
    first = datetime.fromisoformat(f"{day}T11:00:00").replace(tzinfo=ZoneInfo(NY))
    assert datetime.fromisoformat(empty["slots"][0]["starts_at"]) == first
    remaining = {s["local_start"][11:16]: s["remaining"] for s in after["slots"]}
    # The 17:00-19:00 event keeps the 17:00 and 18:00 slots busy, so 16:00, 17:00, 18:00 overlap it.
    assert remaining == {"11:00": 2, "12:00": 2, "13:00": 2, "14:00": 2, "15:00": 2, "16:00": 1,
                         "17:00": 1, "18:00": 1, "19:00": 2, "20:00": 2}
    assert after["party_size"] == 12


async def test_full_slots_and_lead_time_are_not_offered(make_app, client_of, add_customer):
    _, auth = await add_customer()
    app = make_app([], booking_capacity=1, booking_lead_time_hours=24 * 3, booking_slot_minutes=120,
                   booking_default_duration_minutes=120)
    async with client_of(app) as c:
        await c.post("/v1/bookings", json=booking_body(starts_at=local_start(hour=13)), headers=auth)
        week = (await c.get("/v1/availability", params={
            "from": local_day(0).isoformat(), "to": local_day(7).isoformat(), "time_zone": NY})).json()
    offered = starts(week)
    now = datetime.now(timezone.utc)
    assert offered and all(datetime.fromisoformat(s["starts_at"]) >= now + timedelta(hours=72) for s in week["slots"])
    day7 = [s[11:16] for s in offered if s.startswith(local_day(7).isoformat())]
    assert day7 == ["11:00", "15:00", "17:00", "19:00"]


async def test_availability_bad_input_names_the_field(make_app, client_of):
    app = make_app([])
    day = local_day(3)
    cases = {
        "query.to": {"from": day.isoformat(), "to": (day - timedelta(days=1)).isoformat()},
        "query.time_zone": {"from": day.isoformat(), "to": day.isoformat(), "time_zone": "Nowhere/Land"},
        "query.party_size": {"from": day.isoformat(), "to": day.isoformat(), "party_size": 500},
        "query.from": {"to": day.isoformat()},
    }
    async with client_of(app) as c:
        for field, params in cases.items():
            r = await c.get("/v1/availability", params=params)
            assert r.status_code == 422 and r.json()["errors"][0]["field"] == field, (field, r.text)
        span = await c.get("/v1/availability", params={"from": day.isoformat(),
                                                       "to": (day + timedelta(days=40)).isoformat()})
    assert span.status_code == 422 and "31 days" in span.json()["detail"]


async def test_availability_asks_the_plugins(make_app, client_of):
    app = make_app([BookingHooks()], flags={FLAG: True})
    day = local_day(7).isoformat()
    base = {"from": day, "to": day, "time_zone": NY}
    async with client_of(app) as c:
        plain = (await c.get("/v1/availability", params=base)).json()
        closed = (await c.get("/v1/availability", params={**base, "capacity": "0"})).json()
        wider = (await c.get("/v1/availability", params={**base, "capacity": "4"})).json()
        refused = await c.get("/v1/availability", params={**base, "refuse": "yes"})
    assert len(plain["slots"]) == 10
    assert closed["slots"] == []
    # a plugin's refusal is answered as create answers it, not as a fully booked day
    assert refused.status_code == 422, refused.text
    assert {s["remaining"] for s in wider["slots"]} == {4}


class AtOnce(BookingHooks):
    """Counts the calls: availability asks each hook once per query, whatever its slots."""

    name = "at_once"

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    @hookimpl
    async def validate_booking(self, booking, conn):
        self.calls += 1
        assert booking.starts_at is None  # asked for every slot at once

    @hookimpl
    def booking_limits(self, booking, starts):
        self.calls += 1
        return SlotLimit("at_once", [5 if start.hour % 2 == 0 else Refusal("odd hours are full") for start in starts])


async def test_availability_takes_answers_for_all_slots_at_once(make_app, client_of):
    """``validate_booking`` and ``booking_limits`` are asked once per query, not per slot, and
    the limits decide capacity and refusals (broken on purpose: ignoring the refusals offers
    the odd hours)."""
    day = local_day(7).isoformat()
    params = {"from": day, "to": day, "time_zone": NY}
    at_once = AtOnce()
    async with client_of(make_app([at_once], flags={FLAG: True})) as c:
        answered = (await c.get("/v1/availability", params=params)).json()["slots"]
    assert answered and {s["capacity"] for s in answered} == {5}
    assert all(datetime.fromisoformat(s["starts_at"]).hour % 2 == 0 for s in answered)
    assert at_once.calls == 2


def test_day_grid_through_clock_changes():
    """A day's grid is the slots whose local time exists, each at its own offset, on days
    the clock changes during business hours too (broken on purpose: one offset for the
    whole day puts the slots after a change an hour off)."""
    from dataclasses import replace

    rules = svc.Rules.of(Settings(secret_key="x" * 32))
    days = [("America/New_York", date(2027, 3, 14)), ("America/New_York", date(2027, 11, 7)),
            ("Australia/Lord_Howe", date(2027, 4, 4)), ("Australia/Lord_Howe", date(2027, 10, 3)),
            ("Europe/Berlin", date(2027, 3, 28)), ("Asia/Kolkata", date(2027, 3, 28))]
    for opening, closing in ((time(0, 0), time(23, 30)), (time(11, 0), time(22, 0))):
        hours = replace(rules, open=opening, close=closing, slot=timedelta(minutes=30))
        for name, day in days:
            tz = ZoneInfo(name)
            local = [datetime.combine(day, opening) + k * hours.slot
                     for k in range((datetime.combine(day, closing) - datetime.combine(day, opening)) // hours.slot)]
            expected = [u for u in (svc.to_utc(t, tz) for t in local) if u is not None]
            assert svc.day_grid(hours, day, tz) == expected, (name, day, opening)
    new_york = svc.day_grid(replace(rules, open=time(0, 0), close=time(6, 0), slot=timedelta(hours=1)),
                            date(2027, 3, 14), ZoneInfo("America/New_York"))
    assert [svc.wall_clock(s, ZoneInfo("America/New_York"))[11:16] for s in new_york] == [
        "00:00", "01:00", "03:00", "04:00", "05:00"]


# --- every offered slot is accepted by create ------------------------------------------------

ZONES = ["America/New_York", "Europe/Berlin", "Asia/Kolkata", "Australia/Lord_Howe", "UTC", "America/Los_Angeles"]


@st.composite
def scenarios(draw):
    opening = draw(st.integers(6, 14))
    rules = {
        "business_open": time(opening, draw(st.sampled_from([0, 30]))),
        "business_close": time(min(23, opening + draw(st.integers(3, 12))), 0),
        "booking_slot_minutes": draw(st.sampled_from([15, 30, 45, 60, 90, 120])),
        "booking_default_duration_minutes": draw(st.sampled_from([30, 60, 90, 120, 180])),
        "booking_capacity": draw(st.integers(0, 3)),
        "booking_lead_time_hours": draw(st.integers(0, 48)),
        "booking_max_advance_days": draw(st.integers(1, 4)),
    }
    zone = draw(st.sampled_from(ZONES))
    # "now" during the local day, so the lead-time and advance limits fall inside business hours.
    local_now = datetime(2027, draw(st.integers(1, 12)), draw(st.integers(1, 28)), draw(st.integers(5, 22)),
                         draw(st.sampled_from([0, 17, 30])))
    now = local_now.replace(tzinfo=ZoneInfo(zone)).astimezone(timezone.utc)
    existing = draw(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 40), st.sampled_from([30, 60, 120, 180]),
                                       st.sampled_from(["pending", "confirmed", "cancelled"])), max_size=8))
    return {"rules": rules, "now": now, "tz": zone, "existing": existing,
            "party": draw(st.integers(2, 60))}


class _Undo(Exception):
    pass


@asynccontextmanager
async def undone(conn):
    """A savepoint rolled back when the block ends."""
    try:
        async with conn.savepoint():
            yield
            raise _Undo
    except _Undo:
        pass


async def check(ctx, scenario) -> int:
    rules = svc.rules_of(ctx)
    tz = ZoneInfo(scenario["tz"])
    now = scenario["now"]
    first_day = now.astimezone(tz).date()
    async with ctx.db.transaction() as conn, undone(conn):
        cid = uuid.uuid4()
        await conn.run(sa.insert(customers).values(id=cid, email_hash=uuid.uuid4().bytes * 2, email_enc="x",
                                                   name_enc="x", key_id="test"))
        for day, index, duration, status in scenario["existing"]:
            grid = svc.day_grid(rules, first_day + timedelta(days=day), tz)
            start = grid[index % len(grid)]
            await conn.run(sa.insert(bookings).values(
                customer_id=cid, starts_at=start, time_zone=scenario["tz"], duration_minutes=duration,
                party_size=10, adults=10, children=0, address_enc="x", key_id="test", status=status, total_cents=0,
                slot_key=svc.slot_key(start)))
        principal = Principal("customer", str(cid))
        offer = await svc.availability(conn, ctx, principal, start_day=first_day,
                                       end_day=first_day + rules.max_advance + timedelta(days=1),
                                       party_size=scenario["party"], time_zone=scenario["tz"], now=now)
        # Spread over the offer, with both ends where the lead time and the advance limit bite.
        checked = offer.slots[:: max(1, len(offer.slots) // 6)] + offer.slots[-1:]
        for slot in checked:
            body = svc.BookingCreate(starts_at=slot.starts_at, time_zone=scenario["tz"], adults=scenario["party"],
                                     address="1 Main St")
            # Each slot is checked against the offer's state: its creates are undone after.
            async with undone(conn):
                for _ in range(slot.remaining):
                    await svc.create_booking(conn, ctx, principal, body, now=now)
                # The remaining capacity was exact: one more is refused.
                async with undone(conn):
                    with pytest.raises(Problem) as refused:
                        await svc.create_booking(conn, ctx, principal, body, now=now)
                assert refused.value.status == 409, refused.value.detail
    return len(checked)


def test_every_offered_slot_is_accepted_by_create(settings, db_url):
    from myhibachi.core.app import create_app

    loop = asyncio.new_event_loop()
    db = Database(db_url, pool_size=2)
    ctx = create_app([], settings=settings, database=db).state.ctx

    @hsettings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    @given(scenarios())
    def prop(scenario):
        example_ctx = dataclasses.replace(ctx, settings=settings.model_copy(update=scenario["rules"]), extra={})
        loop.run_until_complete(check(example_ctx, scenario))

    try:
        prop()
    finally:
        loop.run_until_complete(db.close())
        loop.close()
