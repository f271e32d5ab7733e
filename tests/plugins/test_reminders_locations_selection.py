"""Each of reminders and locations works with the other deselected."""
from __future__ import annotations

import uuid

import sqlalchemy as sa

from myhibachi.core.app import create_app
from myhibachi.core.events import deliver_due
from myhibachi.core.models import bookings
from myhibachi.plugins.reminders.models import booking_reminders

FLAGS = {"FEATURE_FLAG_BOOKING_REMINDERS": True, "FEATURE_FLAG_MULTI_LOCATION": True}


async def count(db, table) -> int:
    async with db.read() as conn:
        return await conn.scalar(sa.select(sa.func.count()).select_from(table))


async def test_installed_entry_points_and_deselection_by_setting(make_app, settings, clean_db):
    make_app([], flags=FLAGS)  # writes the toggles
    # recurring requires reminders: leaving reminders out of a strict start leaves it out too
    app = create_app(settings=settings.model_copy(update={"disabled_plugins": "reminders,recurring"}),
                     database=clean_db)
    records = app.state.ctx.plugins.records
    assert records["reminders"].state == "not selected" and records["locations"].state == "enabled"
    assert app.state.ctx.plugins.get("reminders") is None


async def test_locations_without_reminders(make_app, client_of, seed):
    from tests.core.conftest import booking_body

    app = make_app(["locations"], flags=FLAGS)
    ctx = app.state.ctx
    customer = await seed.customer()
    async with client_of(app, headers=await seed.staff("*")) as c:
        made = await c.post("/v1/locations", json={
            "name": "Midtown", "address": "1 Grill Ave", "city": "New York", "state": "NY", "zip_code": "10001",
            "time_zone": "America/New_York", "capacity": 20, "service_area": {"zip_codes": ["10001"]}})
        assert made.status_code == 201, made.text
        booked = await c.post("/v1/bookings", json=booking_body(zip_code="10001", customer_id=str(customer)))
        assert booked.status_code == 201, booked.text
        missing = await c.get(f"/v1/bookings/{booked.json()['id']}/reminders")
        assert missing.status_code == 404 and "flag" not in missing.json()
    while await deliver_due(ctx):
        pass
    async with seed.db.read() as conn:
        assert await conn.scalar(sa.select(bookings.c.pools)) == ["location:" + uuid.UUID(made.json()["id"]).hex]
    assert await count(seed.db, booking_reminders) == 0
    assert "reminders" not in ctx.extra.get("pollers", {})


async def test_reminders_without_locations(make_app, client_of, seed):
    from tests.core.conftest import booking_body

    app = make_app(["comms", "reminders"], flags=FLAGS)
    ctx = app.state.ctx
    customer = await seed.customer()
    async with client_of(app, headers=seed.token(customer)) as c:
        assert (await c.get("/v1/locations")).status_code == 404
        booked = await c.post("/v1/bookings", json=booking_body(zip_code="94105"))
        assert booked.status_code == 201, booked.text
        while await deliver_due(ctx):
            pass
        listed = (await c.get(f"/v1/bookings/{booked.json()['id']}/reminders")).json()["items"]
    assert [r["reminder_type"] for r in listed] == ["24h_before", "1h_before"]
    async with seed.db.read() as conn:
        assert await conn.scalar(sa.select(bookings.c.pools)) == []
