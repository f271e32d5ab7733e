"""Contact lists, segments and opt-outs through the HTTP API."""
from __future__ import annotations

import uuid
from datetime import timedelta

import sqlalchemy as sa

from myhibachi.core.db import utcnow
from myhibachi.core.models import bookings
from myhibachi.plugins.comms import CommsPlugin
from myhibachi.plugins.comms import service as comms
from myhibachi.plugins.comms.models import comms_opt_outs
from myhibachi.plugins.contact_lists import ContactListsPlugin
from myhibachi.plugins.contact_lists.models import contact_list_members
from myhibachi.plugins.contact_lists.service import unsubscribe_token
from tests.plugins.comms.helpers import deliver, events, key

LISTS = "/v1/admin/contact-lists"
FLAGS = {"FEATURE_FLAG_DIRECT_COMMUNICATIONS": True, "FEATURE_FLAG_CONTACT_LISTS": True}


def app_of(make_app):
    return make_app([CommsPlugin(), ContactListsPlugin()], flags=FLAGS)


def field_of(response) -> str:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return response.json()["errors"][0]["field"]


async def test_contact_list_management(make_app, client_of, seed):
    app = app_of(make_app)
    soon = utcnow() + timedelta(days=10)
    big_here, small_here, big_there, cancelled, old, nobody = [await seed.customer() for _ in range(6)]
    await seed.booking(big_here, soon, party_size=12, zip_code="10001")
    await seed.booking(small_here, soon, party_size=4, zip_code="10001")
    await seed.booking(big_there, soon, party_size=12, zip_code="90210")
    await seed.booking(cancelled, soon, party_size=12, zip_code="10001", status="cancelled")
    booked_long_ago = await seed.booking(old, soon, party_size=14, zip_code="10001")
    async with seed.db.transaction() as conn:
        await conn.run(sa.update(bookings).where(bookings.c.id == booked_long_ago)
                       .values(created_at=utcnow() - timedelta(days=400)))
    staff = await seed.staff("contacts.read", "contacts.write")
    async with client_of(app, headers=staff) as c:
        made = await c.post(LISTS, json={"name": "Big parties in 10001", "rules": {
            "booked_within_days": 365, "min_party_size": 10, "zip_codes": ["10001"]}})
        assert made.status_code == 201, made.text
        assert made.json()["kind"] == "rules"
        members = (await c.get(f"{LISTS}/{made.json()['id']}/members")).json()
        assert members == {"count": 1, "sample": [str(big_here)]}
        wider = (await c.post(LISTS, json={"name": "Big parties", "rules": {"min_party_size": 10}})).json()
        members = (await c.get(f"{LISTS}/{wider['id']}/members")).json()
        assert members["count"] == 3 and set(members["sample"]) == {str(big_here), str(big_there), str(old)}
        for rules, field in (({"min_party_size": 0}, "min_party_size"), ({"party": 10}, "party"), ({}, "rules"),
                             ({"zip_codes": ["10001", "1\u0000"]}, "zip_codes.1")):
            bad = await c.post(LISTS, json={"name": "x", "rules": rules})
            assert bad.status_code == 422 and field in field_of(bad), bad.text

        static = (await c.post(LISTS, json={"name": "VIPs"})).json()
        assert static["kind"] == "static"
        url = f"{LISTS}/{static['id']}/contacts"
        added = await c.post(url, json={"customer_ids": [str(big_here), str(nobody), str(big_here)]})
        assert added.json() == {"added": 2, "count": 2}, added.text
        assert (await c.post(url, json={"customer_ids": [str(nobody)]})).json() == {"added": 0, "count": 2}
        unknown = await c.post(url, json={"customer_ids": [str(small_here), str(uuid.uuid4())]})
        assert unknown.status_code == 422 and field_of(unknown) == "body.customer_ids"
        async with seed.db.read() as conn:
            stored = set(await conn.scalars(sa.select(contact_list_members.c.customer_id)))
        assert stored == {big_here, nobody}  # nothing half-added
        to_segment = await c.post(f"{LISTS}/{made.json()['id']}/contacts", json={"customer_ids": [str(nobody)]})
        assert to_segment.status_code == 409
        assert (await c.post(f"{LISTS}/{uuid.uuid4()}/contacts", json={"customer_ids": [str(nobody)]})).status_code == 404
    async with client_of(app, headers=await seed.staff("comms.read")) as c:
        assert (await c.post(LISTS, json={"name": "x"})).status_code == 403


async def test_opt_out_management(make_app, client_of, seed):
    app = app_of(make_app)
    ctx = app.state.ctx
    ana = await seed.customer(phone="+12025550131", email="ana@example.com")
    bo = await seed.customer(phone="+12025550132")
    sender = await seed.staff("comms.send")
    admin = await seed.staff("contacts.read")
    async with client_of(app) as c:
        # the signed-in customer opts out of SMS: stored once, published once
        first = await c.post("/v1/communications/opt-out", json={"channel": "sms"}, headers=seed.token(ana))
        assert first.json() == {"channel": "sms", "changed": True}, first.text
        again = await c.post("/v1/communications/opt-out", json={"channel": "sms"}, headers=seed.token(ana))
        assert again.json()["changed"] is False
        [published] = await events(ctx.db, "message.opted_out")
        assert published["payload"] == {"channel": "sms", "customer_id": str(ana),
                                        "address_hash": comms.address_hash(ctx, "sms", "+12025550131").hex()}
        refused = await c.post("/v1/communications/sms/send", json={"customer_id": str(ana), "body": "Hi"},
                               headers={**sender, **key("1")})
        assert refused.status_code == 409 and "opted out" in refused.json()["reason"], refused.text
        # ...while email still goes
        ok = await c.post("/v1/communications/email/send", headers={**sender, **key("2")},
                          json={"customer_id": str(ana), "subject": "Hi", "text": "Hi"})
        assert ok.status_code == 202, ok.text

        # an unsubscribe link needs no sign-in; a forged one is refused
        token = unsubscribe_token(ctx.settings.signing_key, ana, "email")
        forged = token.replace(".email.", ".sms.")
        bad = await c.post("/v1/communications/opt-out", json={"token": forged})
        assert bad.status_code == 422 and field_of(bad) == "body.token"
        link = await c.post("/v1/communications/opt-out", json={"token": token})
        assert link.json() == {"channel": "email", "changed": True}, link.text
        refused = await c.post("/v1/communications/email/send", headers={**sender, **key("3")},
                               json={"customer_id": str(ana), "subject": "Hi", "text": "Hi"})
        assert refused.status_code == 409
        anonymous = await c.post("/v1/communications/opt-out", json={"channel": "sms"})
        assert anonymous.status_code == 401

        # an inbound STOP opts a number out, START back in
        url = "http://test/v1/webhooks/twilio"
        for n, word in enumerate(("STOP", "START")):
            params = {"MessageSid": f"SMin{n}", "From": "+12025550132", "To": "+12025550000", "Body": word}
            posted = await c.post("/v1/webhooks/twilio", data=params,
                                  headers={"X-Twilio-Signature": ctx.ports.sms.sign_webhook(url, params)})
            assert posted.status_code == 200, posted.text
            await deliver(ctx)
            listed = (await c.get("/v1/admin/opt-outs", params={"channel": "sms", "to": "+1 202 555 0132"},
                                  headers=admin)).json()["items"]
            assert [o["keyword"] for o in listed] == (["STOP"] if word == "STOP" else [])
            if word == "STOP":
                bo_refused = await c.post("/v1/communications/sms/send", headers={**sender, **key("4")},
                                          json={"customer_id": str(bo), "body": "Hi"})
                assert bo_refused.status_code == 409

        everyone = (await c.get("/v1/admin/opt-outs", headers=admin)).json()["items"]
        assert sorted((o["channel"], o["keyword"]) for o in everyone) == [("email", "link"), ("sms", "customer")]
        newest = (await c.get("/v1/admin/opt-outs", params={"limit": 1}, headers=admin)).json()
        older = (await c.get("/v1/admin/opt-outs", params={"limit": 1, "cursor": newest["next_cursor"]},
                             headers=admin)).json()
        assert [o["keyword"] for o in newest["items"] + older["items"]] == [o["keyword"] for o in everyone]
        assert older["next_cursor"] is None
        async with ctx.db.read() as conn:
            rows = (await conn.fetch_all(sa.select(comms_opt_outs.c.channel, comms_opt_outs.c.opted_out)))
        assert sorted((r["channel"], r["opted_out"]) for r in rows) == [("email", True), ("sms", False), ("sms", True)]
