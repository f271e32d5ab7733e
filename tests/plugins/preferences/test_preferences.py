"""Communication preferences end to end: set through HTTP, recorded with their history, and
honoured by comms' sends and by reminders (which send through comms)."""
from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from myhibachi.core.db import utcnow
from myhibachi.core.models import outbox_events
from myhibachi.plugins.comms.models import comms_messages
from myhibachi.plugins.preferences import PreferencesPlugin
from myhibachi.plugins.preferences.models import customer_preferences, preference_changes
from myhibachi.plugins.reminders.service import dispatch_due
from tests.plugins.reminders.helpers import reminders_app, sent, work

FLAG = "FEATURE_FLAG_CUSTOMER_PREFERENCES"
SMS, EMAIL = "/v1/communications/sms/send", "/v1/communications/email/send"


def app_of(make_app, flag=True):
    return reminders_app(make_app, PreferencesPlugin(), flags={FLAG: flag})


async def rows(db, table):
    async with db.read() as conn:
        return [dict(r) for r in await conn.fetch_all(sa.select(table))]


async def test_customer_communication_preferences(make_app, client_of, seed):
    """Broken on purpose by making ``refusal`` always allow: the transactional email and the
    reminder's email go out (red)."""
    app = app_of(make_app)
    ctx = app.state.ctx
    customer = await seed.customer(email="mia@example.com", phone="+12025550121")
    url = f"/v1/customers/{customer}/preferences"
    # quiet hours well clear of the sends below, whatever time the test runs at
    local = utcnow().astimezone(ZoneInfo("America/Chicago")).replace(second=0, microsecond=0)
    quiet_start, quiet_end = (local + timedelta(hours=6)).time(), (local + timedelta(hours=8)).time()
    async with client_of(app, headers=seed.token(customer)) as c:
        first = (await c.get(url)).json()
        assert (first["email_marketing"], first["email_transactional"], first["sms_marketing"],
                first["sms_transactional"], first["marketing_frequency"], first["language"], first["updated_at"]) == \
            (True, True, False, True, "weekly", "en", None)
        put = await c.put(url, json={"email_transactional": False, "email_marketing": False, "language": "es",
                                     "time_zone": "America/Chicago", "quiet_start": quiet_start.strftime("%H:%M"),
                                     "quiet_end": quiet_end.strftime("%H:%M"),
                                     "source": "app"})
        assert put.status_code == 200, put.text
        assert (put.json()["email_transactional"], put.json()["language"], put.json()["quiet_start"]) == \
            (False, "es", quiet_start.isoformat())
        again = await c.put(url, json={"language": "es"})  # no change: no history row, no event
        assert again.status_code == 200
        assert (await c.get(url)).json()["time_zone"] == "America/Chicago"

    [stored] = await rows(seed.db, customer_preferences)
    assert (stored["customer_id"], stored["email_transactional"], stored["sms_transactional"], stored["language"]) == \
        (customer, False, True, "es")
    [change] = await rows(seed.db, preference_changes)
    assert (change["actor_kind"], change["actor_id"], change["source"]) == ("customer", str(customer), "app")
    assert change["changes"]["email_transactional"] == {"old": True, "new": False}
    assert "sms_transactional" not in change["changes"]
    [event] = [e for e in await rows(seed.db, outbox_events) if e["name"] == "preferences.changed"]
    assert event["payload"]["changes"]["language"] == {"old": "en", "new": "es"}

    # comms refuses what the customer opted out of, naming why, and queues what is allowed
    async with client_of(app, headers=await seed.staff("comms.send", "comms.read")) as c:
        email = await c.post(EMAIL, json={"customer_id": str(customer), "subject": "Your booking", "text": "See you"},
                             headers={"Idempotency-Key": "e1"})
        assert email.status_code == 409, email.text
        assert "opted out of transactional email (preferences)" in email.json()["reason"]
        text = await c.post(SMS, json={"customer_id": str(customer), "body": "See you at 6"},
                            headers={"Idempotency-Key": "s1"})
        assert text.status_code == 202, text.text
    assert [(m["channel"], m["kind"]) for m in await rows(seed.db, comms_messages)] == [("sms", "transactional")]

    # reminders send through comms and get the same answer, per channel
    booking = await seed.booking(customer, utcnow() + timedelta(days=3))
    at = (utcnow() + timedelta(hours=2)).replace(microsecond=0)
    async with client_of(app, headers=seed.token(customer)) as c:
        made = await c.post(f"/v1/bookings/{booking}/reminders",
                            json={"reminder_type": "custom", "channel": "both", "scheduled_at": at.isoformat()})
        assert made.status_code == 201, made.text
    assert await dispatch_due(ctx, now=at) == 1
    await work(ctx)
    async with client_of(app, headers=await seed.staff("reminders.read")) as c:
        [reminder] = (await c.get(f"/v1/bookings/{booking}/reminders")).json()["items"]
    assert reminder["last_error"] == "email: the customer opted out of transactional email (preferences)"
    assert sorted(r["port"] for r in await sent(seed.db)) == ["sms", "sms"]


async def test_preferences_bad_input_and_access(make_app, client_of, seed):
    app = app_of(make_app)
    customer = await seed.customer()
    other = await seed.customer()
    url = f"/v1/customers/{customer}/preferences"
    async with client_of(app, headers=seed.token(customer)) as c:
        for body, field in (({"marketing_frequency": "hourly"}, "marketing_frequency"),
                            ({"email_marketing": None}, "email_marketing"),
                            ({"time_zone": "Mars/Olympus"}, "time_zone"),
                            ({"language": "English!"}, "language"),
                            ({"quiet_start": "22:00"}, "quiet_end"),
                            ({"colour": "red"}, "colour")):
            bad = await c.put(url, json=body)
            assert bad.status_code == 422, (body, bad.text)
            assert bad.headers["content-type"].startswith("application/problem+json")
            assert bad.json()["errors"][0]["field"] == f"body.{field}", bad.json()
        assert (await c.get(f"/v1/customers/{other}/preferences")).status_code == 404
    assert await rows(seed.db, customer_preferences) == [] and await rows(seed.db, preference_changes) == []
    async with client_of(app, headers=await seed.staff("comms.send")) as c:
        assert (await c.get(url)).status_code == 403
    async with client_of(app, headers=await seed.staff("preferences.write")) as c:
        put = await c.put(url, json={"sms_transactional": False, "source": "phone"})
        assert put.status_code == 200
    [change] = await rows(seed.db, preference_changes)
    assert (change["actor_kind"], change["source"]) == ("api_key", "phone")


async def test_an_opt_out_binds_with_the_flag_off(make_app, client_of, seed):
    """Consent is not rolled out: with the feature's flag off its routes are gone, but a
    recorded opt-out still refuses marketing and transactional messages alike."""
    on = app_of(make_app)
    customer = await seed.customer(phone="+12025550131")
    async with client_of(on, headers=seed.token(customer)) as c:
        assert (await c.put(f"/v1/customers/{customer}/preferences", json={"sms_transactional": False})).status_code == 200
    off = app_of(make_app, flag=False)
    async with client_of(off, headers=await seed.staff("comms.send")) as c:
        assert (await c.get(f"/v1/customers/{customer}/preferences")).status_code == 404
        text = await c.post(SMS, json={"customer_id": str(customer), "body": "Hi"}, headers={"Idempotency-Key": "x"})
        assert text.status_code == 409 and "transactional sms" in text.json()["reason"]


def templates_app(make_app):
    from myhibachi.plugins.comm_templates import CommTemplatesPlugin

    return reminders_app(make_app, PreferencesPlugin(), CommTemplatesPlugin(),
                         flags={FLAG: True, "FEATURE_FLAG_COMMUNICATION_TEMPLATES": True})


async def test_quiet_hours_hold_a_message_until_they_end(make_app, client_of, seed):
    """A message in the customer's quiet hours is queued until they end (in their zone) and
    sent then; another customer's goes at once.

    Broken on purpose: ``quiet_until`` answering None (the SMS goes at once, red); comms
    ignoring the hold (sent at once, red)."""
    from myhibachi.plugins.comms.service import dispatch_due as send_due

    app = templates_app(make_app)
    ctx = app.state.ctx
    quiet, talkative = await seed.customer(phone="+12025550131"), await seed.customer(phone="+12025550132")
    zone = ZoneInfo("Asia/Tokyo")
    local = utcnow().astimezone(zone)
    start, end = (local - timedelta(hours=1)).time(), (local + timedelta(hours=1)).replace(second=0, microsecond=0)
    async with client_of(app, headers=seed.token(quiet)) as c:
        put = await c.put(f"/v1/customers/{quiet}/preferences", json={
            "time_zone": "Asia/Tokyo", "quiet_start": start.strftime("%H:%M"), "quiet_end": end.strftime("%H:%M"),
            "language": "es"})
        assert put.status_code == 200, put.text
    async with client_of(app, headers=await seed.staff("comms.send")) as c:
        for who, key in ((quiet, "q1"), (talkative, "t1")):
            queued = await c.post(SMS, json={"customer_id": str(who), "body": "Your chef is on the way"},
                                  headers={"Idempotency-Key": key})
            assert queued.status_code == 202, queued.text
    due = {r["customer_id"]: r["next_attempt_at"] for r in await rows(seed.db, comms_messages)}
    assert due[quiet] == end.astimezone(ZoneInfo("UTC")) and due[talkative] <= utcnow()
    await send_due(ctx)
    assert [m["to"] for m in await sent(seed.db)] == ["+12025550132"]  # the quiet one waits
    await send_due(ctx, now=due[quiet] + timedelta(seconds=1))
    assert sorted(m["to"] for m in await sent(seed.db)) == ["+12025550131", "+12025550132"]


async def test_hook_customer_languages(make_app, client_of, seed):
    """A reminder uses the template of the customer's chosen language, English for one who
    chose none. Broken on purpose: templates not asking the hook (English for both, red)."""
    from myhibachi.plugins.comms.service import dispatch_due as send_due

    app = templates_app(make_app)
    ctx = app.state.ctx
    quiet, talkative = await seed.customer(phone="+12025550131"), await seed.customer(phone="+12025550132")
    async with client_of(app, headers=seed.token(quiet)) as c:
        assert (await c.put(f"/v1/customers/{quiet}/preferences", json={"language": "es"})).status_code == 200
    async with client_of(app, headers=await seed.staff("templates.write")) as c:
        for language, text in (("en", "See you soon"), ("es", "Hasta pronto")):
            made = await c.post("/v1/admin/templates", json={"key": "reminders.custom", "channel": "sms",
                                                             "language": language, "text": text})
            assert made.status_code == 201, made.text
    at = (utcnow() + timedelta(minutes=5)).replace(microsecond=0)
    for who in (quiet, talkative):
        booking = await seed.booking(who, utcnow() + timedelta(days=3))
        async with client_of(app, headers=seed.token(who)) as c:
            made = await c.post(f"/v1/bookings/{booking}/reminders",
                                json={"reminder_type": "custom", "channel": "sms", "scheduled_at": at.isoformat()})
            assert made.status_code == 201, made.text
    assert await dispatch_due(ctx, now=at) == 2
    reminders = {r["customer_id"]: r for r in await rows(seed.db, comms_messages) if r["template_id"]}
    assert set(reminders) == {quiet, talkative}
    await send_due(ctx)
    bodies = {m["to"]: m["body"] for m in await sent(seed.db) if m["reminder_id"]}
    assert bodies == {"+12025550131": "Hasta pronto", "+12025550132": "See you soon"}


def test_quiet_hours_end_at_the_local_wall_clock_across_midnight_and_dst():
    from datetime import datetime, time, timezone

    from myhibachi.plugins.preferences.service import quiet_until

    night = {"time_zone": "America/New_York", "quiet_start": time(21), "quiet_end": time(8)}
    utc = timezone.utc
    # 01:00 EST on the spring-forward day: quiet until 08:00 EDT
    assert quiet_until(night, datetime(2027, 3, 14, 6, 0, tzinfo=utc)) == datetime(2027, 3, 14, 12, 0, tzinfo=utc)
    # 22:00 EDT the evening before fall-back: quiet until 08:00 EST the next day
    assert quiet_until(night, datetime(2027, 11, 7, 2, 0, tzinfo=utc)) == datetime(2027, 11, 7, 13, 0, tzinfo=utc)
    assert quiet_until(night, datetime(2027, 6, 1, 16, 0, tzinfo=utc)) is None  # noon: not quiet
    day = {"time_zone": "Europe/Paris", "quiet_start": time(12), "quiet_end": time(14)}
    assert quiet_until(day, datetime(2027, 6, 1, 10, 30, tzinfo=utc)) == datetime(2027, 6, 1, 12, 0, tzinfo=utc)
    assert quiet_until(day, datetime(2027, 6, 1, 12, 0, tzinfo=utc)) is None  # 14:00 sharp: over
    assert quiet_until({**night, "quiet_start": None, "quiet_end": None}, datetime(2027, 6, 1, 3, tzinfo=utc)) is None
