"""Booking reminders: the API, the booking events, and the worker that sends them through comms."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa

from myhibachi.core.events import deliver_due

from myhibachi.core.db import utcnow
from myhibachi.core.models import outbox_events
from myhibachi.plugins.reminders import RemindersPlugin
from myhibachi.plugins.reminders.models import booking_reminders
from myhibachi.plugins.reminders.service import dispatch_due
from tests.plugins.reminders.helpers import messages, reminders_app, sent, work


async def reminder_rows(db, booking_id):
    async with db.read() as conn:
        rows = await conn.fetch_all(sa.select(booking_reminders).where(booking_reminders.c.booking_id == booking_id)
                                   .order_by(booking_reminders.c.scheduled_at))
    return [dict(r) for r in rows]


async def test_booking_reminder_scheduling(make_app, client_of, seed, clean_db):
    app = reminders_app(make_app)
    ctx = app.state.ctx
    customer = await seed.customer(email="ana@example.com", phone="+12025550001")
    starts_at = (utcnow() + timedelta(days=3)).replace(microsecond=0)
    booking = await seed.booking(customer, starts_at)
    await seed.publish(ctx, "booking.created", {"booking_id": str(booking), "customer_id": str(customer),
                                                 "starts_at": starts_at.isoformat()},
                       actor=str(customer))
    auth = seed.token(customer)
    custom_at = (utcnow() + timedelta(hours=2)).replace(microsecond=0)
    async with client_of(app, headers=auth) as c:
        got = await c.get(f"/v1/bookings/{booking}/reminders")
        assert got.status_code == 200, got.text
        listed = got.json()["items"]
        assert [(r["reminder_type"], r["status"], r["channel"]) for r in listed] == [
            ("24h_before", "pending", "both"), ("1h_before", "pending", "both")]
        assert datetime.fromisoformat(listed[0]["scheduled_at"]) == starts_at - timedelta(hours=24)
        assert datetime.fromisoformat(listed[1]["scheduled_at"]) == starts_at - timedelta(hours=1)

        custom = await c.post(f"/v1/bookings/{booking}/reminders",
                              json={"reminder_type": "custom", "channel": "sms", "scheduled_at": custom_at.isoformat()})
        assert custom.status_code == 201, custom.text
        again = await c.post(f"/v1/bookings/{booking}/reminders", json={"reminder_type": "24h_before"})
        assert again.status_code == 409 and again.headers["content-type"].startswith("application/problem+json")

        one_hour = listed[1]["id"]
        cancelled = await c.delete(f"/v1/bookings/{booking}/reminders/{one_hour}")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"

    # nothing is due yet
    assert await dispatch_due(ctx) == 0
    # the custom reminder's time comes: it alone goes out, by SMS, through comms
    assert await dispatch_due(ctx, now=custom_at + timedelta(seconds=1)) == 1
    await work(ctx)
    out = await sent(clean_db)
    assert [(r["port"], r["to"], r["reminder_id"]) for r in out] == [("sms", "+12025550001", custom.json()["id"])]
    # a day before the event: the 24h reminder goes by email and SMS; the cancelled 1h one never does
    assert await dispatch_due(ctx, now=starts_at - timedelta(minutes=30)) == 1
    await work(ctx)
    out = await sent(clean_db)
    assert sorted((r["port"], r["to"]) for r in out[1:]) == [("email", "ana@example.com"), ("sms", "+12025550001")]
    email = next(r for r in out if r["port"] == "email")
    assert "10 guests" in email["text"] and "1 Main St, Springfield" in email["text"]
    assert await dispatch_due(ctx, now=starts_at - timedelta(minutes=1)) == 0

    async with client_of(app, headers=auth) as c:
        final = {r["reminder_type"]: r for r in (await c.get(f"/v1/bookings/{booking}/reminders")).json()["items"]}
    assert final["custom"]["status"] == "sent" and final["custom"]["sent_at"] is not None
    assert final["24h_before"]["status"] == "sent" and final["24h_before"]["attempts"] == 1
    assert final["1h_before"]["status"] == "cancelled" and final["1h_before"]["sent_at"] is None
    async with client_of(app, headers=auth) as c:
        late = await c.delete(f"/v1/bookings/{booking}/reminders/{final['custom']['id']}")
    assert late.status_code == 409 and late.json()["detail"] == "the reminder is already sent"


async def test_reminder_input_is_checked_and_named(make_app, client_of, seed):
    app = reminders_app(make_app)
    customer = await seed.customer()
    soon = await seed.booking(customer, utcnow() + timedelta(minutes=90))
    later = await seed.booking(customer, utcnow() + timedelta(days=2))
    gone = await seed.booking(customer, utcnow() + timedelta(days=2), status="cancelled")
    base = f"/v1/bookings/{later}/reminders"
    async with client_of(app, headers=seed.token(customer)) as c:
        cases = [
            (base, {"reminder_type": "custom"}, 422, "scheduled_at"),
            (base, {"reminder_type": "custom", "scheduled_at": (utcnow() - timedelta(minutes=1)).isoformat()},
             422, "scheduled_at"),
            (base, {"reminder_type": "custom", "scheduled_at": (utcnow() + timedelta(days=3)).isoformat()},
             422, "scheduled_at"),
            (base, {"reminder_type": "custom", "scheduled_at": "2030-01-01T10:00:00"}, 422, "scheduled_at"),
            (base, {"reminder_type": "weekly"}, 422, "reminder_type"),
            (base, {"reminder_type": "1h_before", "channel": "pigeon"}, 422, "channel"),
            (base, {"reminder_type": "1h_before", "scheduled_at": (utcnow() + timedelta(hours=5)).isoformat()},
             422, "scheduled_at"),
            (f"/v1/bookings/{soon}/reminders", {"reminder_type": "24h_before"}, 422, "reminder_type"),
            (f"/v1/bookings/{gone}/reminders", {"reminder_type": "24h_before"}, 409, None),
        ]
        for url, body, status, field in cases:
            r = await c.post(url, json=body)
            assert r.status_code == status, (body, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            if field:
                assert r.json()["errors"][0]["field"] == f"body.{field}", (body, r.json())
        ok = await c.post(f"/v1/bookings/{soon}/reminders", json={"reminder_type": "1h_before", "channel": "email"})
        assert ok.status_code == 201
        twice = await c.post(f"/v1/bookings/{soon}/reminders", json={"reminder_type": "1h_before"})
        assert twice.status_code == 409
        # a cancelled reminder does not block scheduling the same one again
        assert (await c.delete(f"/v1/bookings/{soon}/reminders/{ok.json()['id']}")).json()["status"] == "cancelled"
        again = await c.post(f"/v1/bookings/{soon}/reminders", json={"reminder_type": "1h_before", "channel": "email"})
        assert again.status_code == 201 and again.json()["id"] != ok.json()["id"]
        bad_cursor = await c.get(base, params={"cursor": "nonsense"})
        assert bad_cursor.status_code == 422 and bad_cursor.json()["errors"][0]["field"] == "query.cursor"
    assert sorted(r["status"] for r in await reminder_rows(seed.db, soon)) == ["cancelled", "pending"]
    assert await reminder_rows(seed.db, later) == []


async def test_reminders_belong_to_the_booking_customer_or_staff(make_app, client_of, seed):
    app = reminders_app(make_app)
    owner, other = await seed.customer(), await seed.customer()
    booking = await seed.booking(owner, utcnow() + timedelta(days=2))
    url = f"/v1/bookings/{booking}/reminders"
    async with client_of(app) as c:
        assert (await c.get(url)).status_code == 401
        theirs = await c.post(url, json={"reminder_type": "24h_before"}, headers=seed.token(other))
        assert theirs.status_code == 404
        assert (await c.get(url, headers=seed.token(other))).status_code == 404
        staff = await seed.staff("reminders.*")
        made = await c.post(url, json={"reminder_type": "24h_before"}, headers=staff)
        assert made.status_code == 201
        reader = await seed.staff("reminders.read")
        assert len((await c.get(url, headers=reader)).json()["items"]) == 1
        denied = await c.delete(f"{url}/{made.json()['id']}", headers=reader)
        assert denied.status_code == 403 and denied.json()["permission"] == "reminders.write"
        outsider = await seed.staff("locations.*")
        assert (await c.get(url, headers=outsider)).status_code == 403
        assert (await c.get(f"/v1/bookings/{uuid.uuid4()}/reminders", headers=staff)).status_code == 404
        assert (await c.delete(f"{url}/{uuid.uuid4()}", headers=staff)).status_code == 404
        page1 = await c.post(url, json={"reminder_type": "1h_before"}, headers=seed.token(owner))
        assert page1.status_code == 201
        first = (await c.get(url, params={"limit": 1}, headers=seed.token(owner))).json()
        second = (await c.get(url, params={"limit": 1, "cursor": first["next_cursor"]},
                              headers=seed.token(owner))).json()
        assert [r["reminder_type"] for r in first["items"] + second["items"]] == ["24h_before", "1h_before"]
        assert second["next_cursor"] is None


async def test_cancelled_and_rescheduled_bookings_move_their_reminders(make_app, client_of, seed):
    app = reminders_app(make_app)
    ctx = app.state.ctx
    customer = await seed.customer()
    starts_at = (utcnow() + timedelta(days=4)).replace(microsecond=0)
    booking = await seed.booking(customer, starts_at)
    created = {"booking_id": str(booking), "customer_id": str(customer), "starts_at": starts_at.isoformat()}
    await seed.publish(ctx, "booking.created", created)
    custom_at = starts_at - timedelta(hours=30)
    async with client_of(app, headers=seed.token(customer)) as c:
        assert (await c.post(f"/v1/bookings/{booking}/reminders", json={
            "reminder_type": "custom", "scheduled_at": custom_at.isoformat()})).status_code == 201

    moved = starts_at - timedelta(days=2)
    async with seed.db.transaction() as conn:
        await conn.run(sa.text("UPDATE bookings SET starts_at = :s WHERE id = :b"), {"s": moved, "b": booking})
    await seed.publish(ctx, "booking.updated", {"booking_id": str(booking), "customer_id": str(customer),
                                                 "changes": {"starts_at": {"old": starts_at.isoformat(),
                                                                           "new": moved.isoformat()}}})
    rows = {r["reminder_type"]: r for r in await reminder_rows(seed.db, booking)}
    assert rows["24h_before"]["scheduled_at"] == moved - timedelta(hours=24) and rows["24h_before"]["status"] == "pending"
    assert rows["1h_before"]["scheduled_at"] == moved - timedelta(hours=1)
    assert rows["1h_before"]["next_attempt_at"] == moved - timedelta(hours=1)
    assert rows["custom"]["status"] == "cancelled"  # it would now come after the event

    # the same event delivered twice changes nothing more; a new booking.created neither
    await seed.publish(ctx, "booking.created", created)
    assert len(await reminder_rows(seed.db, booking)) == 3

    await seed.publish(ctx, "booking.cancelled", {"booking_id": str(booking), "customer_id": str(customer),
                                                   "reason": "customer"})
    assert {r["status"] for r in await reminder_rows(seed.db, booking)} == {"cancelled"}
    assert await dispatch_due(ctx, now=moved) == 0
    assert await messages(seed.db) == []


async def test_defaults_follow_the_setting(make_app, seed):
    app = reminders_app(make_app, defaults="1h_before", default_channel="email")
    customer = await seed.customer()
    booking = await seed.booking(customer, utcnow() + timedelta(days=1, hours=1))
    soon = await seed.booking(customer, utcnow() + timedelta(minutes=20))
    for b in (booking, soon):
        await seed.publish(app.state.ctx, "booking.created", {"booking_id": str(b), "customer_id": str(customer)})
    assert [(r["reminder_type"], r["notification_channel"]) for r in await reminder_rows(seed.db, booking)] == [
        ("1h_before", "email")]
    assert await reminder_rows(seed.db, soon) == []  # its time has passed already

    none = reminders_app(make_app, defaults="")
    third = await seed.booking(customer, utcnow() + timedelta(days=3))
    await seed.publish(none.state.ctx, "booking.created", {"booking_id": str(third), "customer_id": str(customer)})
    assert await reminder_rows(seed.db, third) == []


async def test_a_reminder_is_a_comms_message_in_the_customers_history(make_app, client_of, seed):
    """A due reminder is handed to comms: its messages are in the customer's history, sent once.

    Broken on purpose by leaving the idempotency key out of ``messages_of``: the re-claimed
    reminder queued a second SMS and email (red)."""
    app = reminders_app(make_app)
    ctx = app.state.ctx
    customer = await seed.customer(email="kai@example.com", phone="+12025550110")
    booking = await seed.booking(customer, utcnow() + timedelta(days=3))
    at = (utcnow() + timedelta(hours=2)).replace(microsecond=0)
    async with client_of(app, headers=seed.token(customer)) as c:
        made = await c.post(f"/v1/bookings/{booking}/reminders",
                            json={"reminder_type": "custom", "channel": "both", "scheduled_at": at.isoformat()})
        assert made.status_code == 201, made.text
    assert await dispatch_due(ctx, now=at) == 1
    await work(ctx)

    async with client_of(app, headers=await seed.staff("comms.read", "reminders.read")) as c:
        mine = {"customer_id": str(customer)}
        [sms] = (await c.get("/v1/communications/sms/history", params=mine)).json()["items"]
        [email] = (await c.get("/v1/communications/email/history", params=mine)).json()["items"]
        [row] = (await c.get(f"/v1/bookings/{booking}/reminders")).json()["items"]
    assert (sms["status"], sms["to"], sms["kind"]) == ("sent", "+12025550110", "transactional")
    assert "10 guests" in sms["body"] and sms["provider_id"].startswith("SM")
    assert (email["status"], email["to"]) == ("sent", "kai@example.com")
    assert email["subject"].startswith("Reminder: your hibachi event on ")
    assert (row["status"], row["last_error"], row["attempts"]) == ("sent", None, 1)
    async with seed.db.read() as conn:
        published = await conn.scalars(sa.select(outbox_events.c.payload["message_id"].astext)
                                       .where(outbox_events.c.name == "message.sent"))
    assert sorted(published) == sorted([sms["id"], email["id"]])

    # the reminder claimed again (a retry, a worker that died after the commit): nothing new is sent
    async with seed.db.transaction() as conn:
        await conn.run(sa.update(booking_reminders).values(status="pending"))
    assert await dispatch_due(ctx, now=at) == 1
    await work(ctx)
    assert sorted(m["id"] for m in await messages(seed.db)) == sorted(uuid.UUID(m["id"]) for m in (sms, email))
    assert len(await sent(seed.db)) == 2


async def test_an_opted_out_customer_is_refused_the_reminder_with_its_reason(make_app, client_of, seed):
    """A customer who texted STOP gets no SMS reminder; the reminder says why.

    Broken on purpose by taking the opt-out list out of comms' ``send_many``: the reminders
    read 'sent' and queued an SMS (red)."""
    app = reminders_app(make_app)
    ctx = app.state.ctx
    customer = await seed.customer(email="lee@example.com", phone="+12025550111")
    booking = await seed.booking(customer, utcnow() + timedelta(days=3))
    url = "http://test/v1/webhooks/twilio"
    params = {"MessageSid": "SMstop1", "From": "+12025550111", "To": "+15550009999", "Body": "STOP"}
    at = (utcnow() + timedelta(hours=2)).replace(microsecond=0)
    async with client_of(app, headers=seed.token(customer)) as c:
        stop = await c.post("/v1/webhooks/twilio", data=params,
                            headers={"X-Twilio-Signature": ctx.ports.sms.sign_webhook(url, params)})
        assert stop.status_code == 200, stop.text
        while await deliver_due(ctx):  # the hub's event reaches comms' handler, which records the STOP
            pass
        for channel in ("sms", "both"):
            made = await c.post(f"/v1/bookings/{booking}/reminders",
                                json={"reminder_type": "custom", "channel": channel, "scheduled_at": at.isoformat()})
            assert made.status_code == 201, made.text
    assert await dispatch_due(ctx, now=at) == 2
    await work(ctx)

    async with client_of(app, headers=await seed.staff("comms.read", "reminders.read")) as c:
        rows = {r["channel"]: r for r in (await c.get(f"/v1/bookings/{booking}/reminders")).json()["items"]}
        mine = {"customer_id": str(customer)}
        texts = (await c.get("/v1/communications/sms/history", params=mine)).json()["items"]
        emails = (await c.get("/v1/communications/email/history", params=mine)).json()["items"]
    assert (rows["sms"]["status"], rows["sms"]["last_error"]) == ("failed", "sms: the recipient opted out of sms")
    assert rows["sms"]["sent_at"] is None
    # the email of the other one still went; the refused channel is named on it
    assert (rows["both"]["status"], rows["both"]["last_error"]) == ("sent", "sms: the recipient opted out of sms")
    assert texts == [] and [(m["to"], m["status"]) for m in emails] == [("lee@example.com", "sent")]
    assert [r["port"] for r in await sent(seed.db)] == ["email"]
