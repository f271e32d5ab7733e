"""Two plugins limit one slot at once: the location's chef teams and a crew of chefs shared
by every location. Availability offers a slot only when both have room, and create agrees."""
from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from myhibachi.core import Plugin, bookings as svc, hookimpl
from myhibachi.core.auth import Principal
from myhibachi.core.db import Database
from myhibachi.core.errors import Problem
from myhibachi.core.flags import TogglesFile
from myhibachi.core.hookspecs import Refusal, SlotLimit
from myhibachi.core.models import bookings, customers
from myhibachi.plugins.locations import LocationsPlugin, service
from tests.core.test_availability import scenarios, undone

FLAG = "FEATURE_FLAG_MULTI_LOCATION"
BIG_PARTY = 40


class Crew(Plugin):
    """Chefs shared by every location: ``chefs`` events per slot, one for a big party (it
    takes the whole crew), and none at the crew's break."""

    name = "crew"
    version = "1.0.0"

    def __init__(self) -> None:
        self.chefs, self.break_hour = 1, None

    @hookimpl
    def booking_limits(self, booking, starts):
        chefs = min(self.chefs, 1) if booking.party_size > BIG_PARTY else self.chefs
        return SlotLimit("crew", [Refusal("the crew is on a break", 409) if s.hour == self.break_hour else chefs
                                  for s in starts])


@st.composite
def two_limit_scenarios(draw):
    scenario = draw(scenarios())
    scenario["teams"] = draw(st.lists(st.integers(1, 3), min_size=2, max_size=2))  # events per slot, per location
    scenario["chefs"] = draw(st.integers(0, 3))
    scenario["break_hour"] = draw(st.one_of(st.none(), st.integers(0, 23)))
    # which pools each existing booking drew on: here, the other location, the crew
    scenario["pools"] = draw(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=8, max_size=8))
    return scenario


def used(busy: list[tuple], pool: str, start, end, slot: timedelta) -> int:
    """The most active bookings of ``pool`` in one grid slot of [start, end), counted naively."""
    most, g = 0, start
    while g < end:
        most = max(most, sum(1 for s, e, pools in busy if pool in pools and s < g + slot and e > g))
        g += slot
    return most


async def check(ctx, crew: Crew, scenario) -> None:
    rules = svc.rules_of(ctx)
    tz = ZoneInfo(scenario["tz"])
    now = scenario["now"]
    first_day = now.astimezone(tz).date()
    crew.chefs, crew.break_hour = scenario["chefs"], scenario["break_hour"]
    async with ctx.db.transaction() as conn, undone(conn):
        here, there = [await service.create_location(conn, ctx, {
            "name": name, "address": "1 Grill Ave", "city": "X", "state": "NY", "zip_code": zip_code,
            "time_zone": scenario["tz"], "capacity": 100, "events_per_slot": teams,
            "service_area": {"zip_codes": [zip_code]}}) for name, zip_code, teams in
            zip(("Here", "There"), ("10001", "11201"), scenario["teams"])]
        pool_here, pool_there = f"location:{here['id'].hex}", f"location:{there['id'].hex}"
        cid = uuid.uuid4()
        await conn.run(sa.insert(customers).values(id=cid, email_hash=uuid.uuid4().bytes * 2, email_enc="x",
                                                   name_enc="x", key_id="test"))
        busy = []
        for (day, index, duration, status), (elsewhere, crewed) in zip(scenario["existing"], scenario["pools"]):
            grid = svc.day_grid(rules, first_day + timedelta(days=day), tz)
            start = grid[index % len(grid)]
            pools = sorted({pool_there if elsewhere else pool_here, *(["crew"] if crewed else [])})
            await conn.run(sa.insert(bookings).values(
                customer_id=cid, starts_at=start, time_zone=scenario["tz"], duration_minutes=duration,
                party_size=10, adults=10, children=0, address_enc="x", key_id="test", status=status, total_cents=0,
                slot_key=svc.slot_key(start), pools=pools))
            if status != "cancelled":
                busy.append((start, start + timedelta(minutes=duration), pools))
        principal = Principal("customer", str(cid))
        last_day = first_day + rules.max_advance + timedelta(days=1)
        offer = await svc.availability(conn, ctx, principal, start_day=first_day, end_day=last_day,
                                       party_size=scenario["party"], time_zone=scenario["tz"], zip_code="10001",
                                       now=now)
        duration = rules.default_duration
        chefs = min(crew.chefs, 1) if scenario["party"] > BIG_PARTY else crew.chefs
        for slot in offer.slots:
            end = slot.starts_at + timedelta(minutes=duration)
            assert slot.starts_at.hour != crew.break_hour
            room = min(here["events_per_slot"] - used(busy, pool_here, slot.starts_at, end, rules.slot),
                       chefs - used(busy, "crew", slot.starts_at, end, rules.slot))
            assert slot.remaining == room > 0, (slot, room)
        body = dict(time_zone=scenario["tz"], adults=scenario["party"], address="1 Main St", zip_code="10001")
        for slot in offer.slots[:: max(1, len(offer.slots) // 5)] + offer.slots[-1:]:
            async with undone(conn):
                for _ in range(slot.remaining):
                    await svc.create_booking(conn, ctx, principal, svc.BookingCreate(starts_at=slot.starts_at,
                                                                                     **body), now=now)
                async with undone(conn):
                    with pytest.raises(Problem) as refused:
                        await svc.create_booking(conn, ctx, principal, svc.BookingCreate(starts_at=slot.starts_at,
                                                                                         **body), now=now)
                assert refused.value.status == 409, refused.value.detail
        # and a start the rules allow but a limit has full (or refuses) is refused by create
        offered = {slot.starts_at for slot in offer.slots}
        day, unoffered = first_day, []
        while day <= last_day:
            unoffered += [s for s in svc.bookable_starts(rules, day, tz, duration, now) if s not in offered]
            day += timedelta(days=1)
        for start in unoffered[:: max(1, len(unoffered) // 3)]:
            async with undone(conn):
                with pytest.raises(Problem) as refused:
                    await svc.create_booking(conn, ctx, principal, svc.BookingCreate(starts_at=start, **body),
                                             now=now)
            assert refused.value.status == 409, refused.value.detail


def test_two_plugins_limit_one_slot_and_availability_agrees_with_create(settings, db_url):
    """Location teams and a shared crew both answer ``booking_limits``: every offered slot has
    the room of the tighter limit, create accepts it exactly ``remaining`` times and refuses
    once more, and what is not offered is refused. Broken on purpose by letting availability
    pass only the first limit to ``room``: it offered a slot with 2 left that the crew had
    room for once, red on the first example (and so when ``room`` itself looks at one limit)."""
    from myhibachi.core.app import create_app

    toggles = TogglesFile(settings.toggles_path)
    toggles.set(FLAG, enabled=True, rollout=100)
    loop = asyncio.new_event_loop()
    db = Database(db_url, pool_size=2)
    crew = Crew()
    app = create_app([LocationsPlugin(), crew], settings=settings, database=db)
    ctx = app.state.ctx
    ctx.flags.start()

    @hsettings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(two_limit_scenarios())
    def prop(scenario):
        example_ctx = dataclasses.replace(ctx, settings=settings.model_copy(update=scenario["rules"]), extra={})
        loop.run_until_complete(check(example_ctx, crew, scenario))

    try:
        prop()
    finally:
        ctx.flags.stop()
        loop.run_until_complete(db.close())
        loop.close()
