"""tip_jar, the example third-party plugin: built from its entry point like a built-in,
its handler opens a jar on booking.created, its route takes the customer's tip, and
FEATURE_FLAG_TIP_JAR gates both."""
import uuid
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from myhibachi.core import events
from myhibachi.core.auth import issue_access_token
from myhibachi.core.models import bookings, customers, event_deliveries

FLAG = "FEATURE_FLAG_TIP_JAR"


async def booked(ctx) -> tuple[uuid.UUID, uuid.UUID]:
    """A customer and a booking, as the core writes them, and the booking.created event."""
    customer_id, booking_id = uuid.uuid4(), uuid.uuid4()
    async with ctx.db.transaction() as conn:
        await conn.run(sa.insert(customers).values(
            id=customer_id, email_hash=uuid.uuid4().bytes * 2, email_enc="x", name_enc="x", key_id="k1"))
        await conn.run(sa.insert(bookings).values(
            id=booking_id, customer_id=customer_id, starts_at=datetime.now(timezone.utc) + timedelta(days=9),
            time_zone="America/Los_Angeles", duration_minutes=120, party_size=10, adults=10, address="1 Main St",
            total_cents=60000, slot_key=uuid.uuid4().hex))
        await events.publish(conn, ctx, "booking.created",
                             {"booking_id": booking_id, "customer_id": customer_id, "party_size": 10},
                             actor=str(customer_id))
    return customer_id, booking_id


def bearer(ctx, customer_id) -> dict:
    token, _ = issue_access_token(ctx.settings, subject=str(customer_id), kind="customer")
    return {"Authorization": f"Bearer {token}"}


async def test_tip_jar_opens_on_booking_created_and_takes_the_customers_tip(make_app, client_of):
    app = make_app(["tip_jar"], flags={FLAG: True})  # by its installed name: the entry point
    ctx = app.state.ctx
    assert type(ctx.plugins.get("tip_jar")).__module__ == "tip_jar"
    customer_id, booking_id = await booked(ctx)
    assert await events.deliver_due(ctx) == 1
    stranger, _ = await booked(ctx)
    await events.deliver_due(ctx)

    async with client_of(app) as c:
        tip = await c.post(f"/v1/tips/{booking_id}", json={"amount_cents": 2500, "message": "great show"},
                           headers=bearer(ctx, customer_id))
        not_theirs = await c.post(f"/v1/tips/{booking_id}", json={"amount_cents": 100},
                                  headers=bearer(ctx, stranger))
        negative = await c.post(f"/v1/tips/{booking_id}", json={"amount_cents": -5},
                                headers=bearer(ctx, customer_id))
        anonymous = await c.post(f"/v1/tips/{booking_id}", json={"amount_cents": 100})
    assert tip.status_code == 200, tip.text
    body = tip.json()
    assert (body["status"], body["amount_cents"], body["currency"]) == ("given", 2500, "USD")
    assert not_theirs.status_code == 404
    assert negative.status_code == 422 and negative.json()["errors"][0]["field"] == "amount_cents"
    assert anonymous.status_code == 401


async def test_tip_jar_is_gated_by_its_flag_like_a_builtin(make_app, client_of):
    app = make_app(["tip_jar"], flags={FLAG: False})
    ctx = app.state.ctx
    customer_id, booking_id = await booked(ctx)
    await events.deliver_due(ctx)
    async with ctx.db.read() as conn:
        status, error = (await conn.execute(sa.select(event_deliveries.c.status, event_deliveries.c.last_error)
                                            .where(event_deliveries.c.subscriber.like("tip_jar:%")))).one()
    assert status == "skipped" and error.startswith(f"{FLAG} is off for")
    async with client_of(app) as c:
        gated = await c.post(f"/v1/tips/{booking_id}", json={"amount_cents": 100}, headers=bearer(ctx, customer_id))
    assert gated.status_code == 404 and gated.json()["flag"] == FLAG
