"""A deployment without recurring, waitlist or group_reservations: the core booking flow and
the other booking plugins still work, and the left-out plugin's routes are not there."""
from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from myhibachi.core.app import create_app
from myhibachi.core.db import utcnow
from myhibachi.core.events import deliver_due
from myhibachi.core.models import bookings, outbox_events
from myhibachi.plugins.reminders.models import booking_reminders

NY = ZoneInfo("America/New_York")
BOOKING_PLUGINS = ("recurring", "waitlist", "group_reservations")
FLAGS = {"FEATURE_FLAG_BOOKING_REMINDERS": True, "FEATURE_FLAG_MULTI_LOCATION": True,
         "FEATURE_FLAG_RECURRING_BOOKINGS": True, "FEATURE_FLAG_BOOKING_WAITLIST": True,
         "FEATURE_FLAG_GROUP_RESERVATIONS": True}
PATHS = ("/v1/bookings/recurring", "/v1/bookings/waitlist", "/v1/bookings/groups")
PLACE = {"time_zone": "America/New_York", "address": "1 Main St", "zip_code": "12345"}


def day(n: int):
    return utcnow().astimezone(NY).date() + timedelta(days=n)


def uses(c) -> dict:
    """One request that puts each booking plugin to work, by name."""
    start = datetime.combine(day(12), time(18)).isoformat()
    return {
        "recurring": lambda: c.post("/v1/bookings/recurring", json={
            "recurrence_rule": "FREQ=WEEKLY;COUNT=2", "start_date": day(14).isoformat(), "local_time": "18:00",
            "adults": 4, **PLACE}),
        "waitlist": lambda: c.post("/v1/bookings/waitlist", json={
            "requested_date": day(16).isoformat(), "party_size": 4, "time_zone": "America/New_York",
            "zip_code": "12345"}),
        "group_reservations": lambda: c.post("/v1/bookings/groups", json={
            "starts_at": start, **PLACE, "menu": [{"code": "chicken", "label": "Chicken"}],
            "guests": [{"name": n, "menu_choice": "chicken", "payer": "Ana"} for n in ("Ana", "Bo")],
            "billing": {"payers": [{"name": "Ana"}]}}),
    }


async def booking_flow(c, staff) -> tuple[str, str]:
    """A location, then two bookings through the core's routes, the second cancelled."""
    made = await c.post("/v1/locations", headers=await staff(["locations.write"]), json={
        "name": "Springfield", "address": "1 Grill Ave", "city": "Springfield", "state": "NY", "zip_code": "12345",
        "time_zone": "America/New_York", "capacity": 20, "service_area": {"zip_codes": ["12345"]}})
    assert made.status_code == 201, made.text
    ids = []
    for n in (10, 11):
        booked = await c.post("/v1/bookings", json={"starts_at": datetime.combine(day(n), time(18)).isoformat(),
                                                    "adults": 4, **PLACE})
        assert booked.status_code == 201, booked.text
        ids.append(booked.json()["id"])
    cancelled = await c.post(f"/v1/bookings/{ids[1]}/cancel", json={"reason": "plans changed"})
    assert cancelled.status_code == 200, cancelled.text
    return ids[0], ids[1]


async def test_deployment_without_the_booking_plugins(make_app, client_of, customer, staff, settings, clean_db):
    make_app([], flags=FLAGS)  # writes the toggles
    app = create_app(settings=settings.model_copy(update={"disabled_plugins": ",".join(BOOKING_PLUGINS)}),
                     database=clean_db)
    ctx = app.state.ctx
    records = ctx.plugins.records
    assert {n: records[n].state for n in BOOKING_PLUGINS} == dict.fromkeys(BOOKING_PLUGINS, "not selected")
    assert records["locations"].state == records["reminders"].state == "enabled"
    ana = await customer()
    async with client_of(app, headers=ana.headers) as c:
        kept, cancelled = await booking_flow(c, staff)
        missing = {name: (await use()).status_code for name, use in uses(c).items()}
    assert set(missing.values()) <= {404, 405}  # no such route (405: /v1/bookings/{id} takes no POST)
    assert not [path for path in app.openapi()["paths"] if path.startswith(PATHS)]
    while await deliver_due(ctx):
        pass
    async with clean_db.read() as conn:
        stored = {str(r["id"]): r["status"] for r in await conn.fetch_all(sa.select(bookings.c.id, bookings.c.status))}
        names = set(await conn.scalars(sa.select(outbox_events.c.name)))
        reminded = {str(r["booking_id"]) for r in await conn.fetch_all(
            sa.select(booking_reminders.c.booking_id).where(booking_reminders.c.status == "pending"))}
    assert stored.keys() == {kept, cancelled} and stored[cancelled] == "cancelled" != stored[kept], stored
    assert {"booking.created", "booking.cancelled"} <= names
    assert reminded == {kept}  # the reminders plugin still follows the bookings' events


@pytest.mark.parametrize("left_out", BOOKING_PLUGINS)
async def test_each_booking_plugin_left_out(left_out, make_app, client_of, customer, staff, clean_db):
    kept = [n for n in BOOKING_PLUGINS if n != left_out]
    app = make_app(["comms", "reminders", "locations", "deposits", *kept], flags=FLAGS)
    ana = await customer()
    async with client_of(app, headers=ana.headers) as c:
        await booking_flow(c, staff)
        answers = {name: await use() for name, use in uses(c).items()}
    assert answers[left_out].status_code in (404, 405)
    assert not [path for path in app.openapi()["paths"] if path.startswith(PATHS[BOOKING_PLUGINS.index(left_out)])]
    for name in kept:
        assert answers[name].status_code == 201, (name, answers[name].text)
    async with clean_db.read() as conn:
        stored = await conn.scalar(sa.select(sa.func.count()).select_from(bookings))
    # the two bookings, two recurring instances, one group station
    assert stored == 2 + 2 * ("recurring" in kept) + ("group_reservations" in kept)
