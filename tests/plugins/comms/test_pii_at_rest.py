"""No customer email, phone number, booking address, menu, notes or message text in plaintext
anywhere in the database."""
from __future__ import annotations

import sqlalchemy as sa

from myhibachi.plugins.comms import CommsPlugin
from tests.core.conftest import booking_body, sign_up
from tests.plugins.comms.helpers import FLAG, deliver, key, outbox, run_worker

EMAIL = "ann.planted@example.com"
PHONE = "+14155552671"
TEXT = "The hibachi truck parks at the blue gate"
ADDRESS, MENU, NOTES = "88 Lanternfish Quay, Springfield", "saffron lobster tails", "doorbell behind the marigolds"
NEEDLES = ("ann.planted", "4155552671", "555-2671", "hibachi truck parks", "blue gate", "lanternfish quay",
           "saffron lobster", "behind the marigolds")
TEXTUAL = ("text", "character varying", "character", "json", "jsonb", "bytea", "ARRAY")


async def plaintext_hits(conn, needles) -> list[str]:
    """Every ``table.column`` of every text, json, bytea and array column in the schema holding a needle."""
    columns = await conn.fetch_all(sa.text(
        "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_schema, table_name) "
        "WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' "
        "AND c.data_type = ANY(:types) AND c.table_name <> 'probe_effects'"),  # other tests' probe (tests/core)
        {"types": list(TEXTUAL)})
    hits = []
    for column in columns:
        name = f'"{column["table_name"]}"."{column["column_name"]}"'
        as_text = f"encode({name}, 'escape')" if column["data_type"] == "bytea" else f"{name}::text"
        for needle in needles:
            found = await conn.scalar(sa.text(
                f'SELECT count(*) FROM "{column["table_name"]}" WHERE lower({as_text}) LIKE :like'),
                {"like": f"%{needle.lower()}%"})
            if found:
                hits.append(f"{column['table_name']}.{column['column_name']} holds {needle!r}")
    return hits


async def test_no_plaintext_email_phone_or_message_text_at_rest_after_a_journey(make_app, client_of, staff,
                                                                                     rotate_pii):
    """A customer signs up and logs in, books, staff send them an SMS and an email (with
    Idempotency-Key) and one to a bare address, the worker sends them through the offline
    adapters, Twilio's status callback (carrying the number) arrives, events are delivered,
    and staff actions are audited: afterwards no text, json, bytea or array column of any table
    holds the planted email, phone number, message text or the booking's address, menu and
    notes. Broken on purpose by storing idempotent responses unsealed (the
    idempotency_keys.response column held all three) and by recording the offline outbox as
    given (offline_outbox.payload): red; and before bookings were sealed, bookings.address,
    bookings.menu and bookings.notes held theirs.

    Then a new PII key becomes current and ``myhibachi admin rotate-pii`` runs: every row is
    sealed under it (the messages through comms' ``rotate_keys``) and reads back the same over
    HTTP. Broken on purpose by leaving comms' hook out: red (comms_messages names the old key)."""
    app = make_app([CommsPlugin(), "admin_rbac", "audit"],
                   flags={FLAG: True, "FEATURE_FLAG_ADMIN_USERS": True, "FEATURE_FLAG_AUDIT_LOGS": True})
    ctx = app.state.ctx
    admin = await staff(["comms.send", "comms.read", "customers.read", "customers.write", "bookings.read"])
    async with client_of(app) as c:
        customer = (await sign_up(c, app, {"email": EMAIL, "password": "correct horse 1", "name": "Ann Lee",
                                           "phone": "(415) 555-2671"}))["customer"]["id"]
        r = await c.post("/v1/customers/login", json={"email": EMAIL, "password": "correct horse 1"})
        assert r.status_code == 200, r.text
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = await c.post("/v1/bookings", json=booking_body(address=ADDRESS, menu=MENU, notes=NOTES),
                         headers={**auth, "Idempotency-Key": "book-1"})
        assert r.status_code == 201, r.text
        assert (r.json()["address"], r.json()["menu"], r.json()["notes"]) == (ADDRESS, MENU, NOTES)
        booking = r.json()["id"]
        r = await c.patch(f"/v1/admin/customers/{customer}", json={"name": "Ann Planted Lee"}, headers=admin)
        assert r.status_code == 200, r.text

        r = await c.post("/v1/communications/sms/send", json={"customer_id": customer, "body": TEXT},
                         headers={**admin, **key("sms")})
        assert r.status_code == 202, r.text
        assert r.json()["to"] == PHONE
        r = await c.post("/v1/communications/email/send", json={"customer_id": customer, "subject": TEXT,
                                                                "text": TEXT, "html": f"<p>{TEXT}</p>"},
                         headers={**admin, **key("email")})
        assert r.status_code == 202, r.text
        r = await c.post("/v1/communications/email/send", json={"to": EMAIL.upper(), "subject": "Quote", "text": TEXT},
                         headers={**admin, **key("bare")})
        assert r.status_code == 202, r.text
        while await run_worker(ctx):
            pass
        [sms] = await outbox(ctx.db, "sms")
        assert (sms["payload"]["to"], sms["payload"]["body"]) == (PHONE, TEXT)
        # the sign-up's code, then the two sent here
        assert sorted(m["payload"]["to"] for m in await outbox(ctx.db, "email")) == [EMAIL, EMAIL, EMAIL]

        params = {"MessageSid": sms["payload"]["sid"], "MessageStatus": "delivered", "To": PHONE}
        signed = {"X-Twilio-Signature": ctx.ports.sms.sign_webhook("http://test/v1/webhooks/twilio", params)}
        r = await c.post("/v1/webhooks/twilio", data=params, headers=signed)
        assert r.status_code == 200, r.text
        await deliver(ctx)
        history = (await c.get("/v1/communications/sms/history", params={"customer_id": customer},
                               headers=admin)).json()["items"]
        assert [m["status"] for m in history] == ["delivered"]

    async with ctx.db.read() as conn:
        assert await conn.scalar(sa.text("SELECT count(*) FROM idempotency_keys")) == 4
        assert await plaintext_hits(conn, NEEDLES) == []

    again, counts = await rotate_pii(app)
    assert counts == {"customer(s)": 1, "booking(s)": 1, "webhook event(s)": 1, "plugin row(s)": 3}
    async with client_of(again) as c:
        history = (await c.get("/v1/communications/sms/history", params={"customer_id": customer},
                               headers=admin)).json()["items"]
        stored = (await c.get(f"/v1/bookings/{booking}", headers=auth)).json()
        profile = (await c.get(f"/v1/admin/customers/{customer}", headers=admin)).json()
    assert [(m["to"], m["body"]) for m in history] == [(PHONE, TEXT)]
    assert (stored["address"], stored["menu"], stored["notes"]) == (ADDRESS, MENU, NOTES)
    assert (profile["email"], profile["name"]) == (EMAIL, "Ann Planted Lee")
