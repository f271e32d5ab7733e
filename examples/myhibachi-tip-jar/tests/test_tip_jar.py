"""tip_jar, tested as its own distribution does: only the myhibachi.testing fixtures.

The plugin is built from its entry point like a built-in; a booking made through the API
opens its jar (the booking.created handler), the booking's customer leaves a tip, and
FEATURE_FLAG_TIP_JAR gates both."""
from datetime import date, datetime, timedelta

import sqlalchemy as sa

from tip_jar.models import tips

FLAG = "FEATURE_FLAG_TIP_JAR"


def booking_body() -> dict:
    starts = datetime.combine(date.today() + timedelta(days=9), datetime.min.time()).replace(hour=17)
    return {"starts_at": starts.isoformat(), "time_zone": "America/Los_Angeles", "adults": 10,
            "address": "1 Main St, Springfield", "zip_code": "90001"}


async def book(app, client_of, who) -> str:
    async with client_of(app, headers=who.headers) as c:
        made = await c.post("/v1/bookings", json=booking_body())
    assert made.status_code == 201, made.text
    return made.json()["id"]


async def jars(database) -> list[dict]:
    async with database.read() as conn:
        return await conn.fetch_all(sa.select(tips.c.booking_id, tips.c.status, tips.c.amount_cents))


async def test_tip_jar_opens_on_booking_created_and_takes_the_customers_tip(make_app, client_of, customer,
                                                                            drain, database):
    """Broken on purpose by returning no handler from register_event_handlers: no jar opened and
    the tip answered 404."""
    app = make_app(["tip_jar"], flags={FLAG: True})  # by its installed name: the entry point
    assert type(app.state.ctx.plugins.get("tip_jar")).__module__ == "tip_jar"
    ana, stranger = await customer(), await customer()
    booking_id = await book(app, client_of, ana)
    await drain(app)  # the worker's part: booking.created reaches the handler

    async with client_of(app) as c:
        tip = await c.post(f"/v1/tips/{booking_id}", json={"amount_cents": 2500, "message": "great show"},
                           headers=ana.headers)
        not_theirs = await c.post(f"/v1/tips/{booking_id}", json={"amount_cents": 100}, headers=stranger.headers)
        negative = await c.post(f"/v1/tips/{booking_id}", json={"amount_cents": -5}, headers=ana.headers)
        anonymous = await c.post(f"/v1/tips/{booking_id}", json={"amount_cents": 100})
    assert tip.status_code == 200, tip.text
    body = tip.json()
    assert (body["status"], body["amount_cents"], body["currency"]) == ("given", 2500, "USD")
    assert not_theirs.status_code == 404
    assert negative.status_code == 422 and negative.json()["errors"][0]["field"] == "body.amount_cents"
    assert anonymous.status_code == 401
    assert [(str(j["booking_id"]), j["status"], j["amount_cents"]) for j in await jars(database)] == [
        (booking_id, "given", 2500)]


async def test_tip_jar_is_gated_by_its_flag_like_a_builtin(make_app, client_of, customer, drain, database):
    app = make_app(["tip_jar"], flags={FLAG: False})
    ana = await customer()
    booking_id = await book(app, client_of, ana)
    await drain(app)
    assert await jars(database) == []  # its handler was skipped
    async with client_of(app) as c:
        gated = await c.post(f"/v1/tips/{booking_id}", json={"amount_cents": 100}, headers=ana.headers)
    assert gated.status_code == 404 and gated.json()["flag"] == FLAG


async def test_tip_jar_caps_a_tip_at_its_setting_from_the_environment(make_app, client_of, customer, drain,
                                                                     monkeypatch):
    from tip_jar import TipJarPlugin

    monkeypatch.setenv("MYHIBACHI_TIP_JAR_MAX_TIP_CENTS", "2000")
    app = make_app([TipJarPlugin()], flags={FLAG: True})
    ana = await customer()
    booking_id = await book(app, client_of, ana)
    await drain(app)
    async with client_of(app, headers=ana.headers) as c:
        over = await c.post(f"/v1/tips/{booking_id}", json={"amount_cents": 2001})
        at_cap = await c.post(f"/v1/tips/{booking_id}", json={"amount_cents": 2000})
    assert over.status_code == 422 and over.json()["errors"][0]["field"] == "body.amount_cents"
    assert at_cap.status_code == 200, at_cap.text
