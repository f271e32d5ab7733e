"""A customer's data export end to end: the record gathered from the core and every plugin
(a plugin defined here included, with no edit to the export), in three formats, audited."""
from __future__ import annotations

import io
import json
import uuid
import zipfile
from datetime import datetime, timezone

import sqlalchemy as sa
from pypdf import PdfReader

from myhibachi.core import Plugin, hookimpl
from myhibachi.plugins.audit import AuditPlugin
from myhibachi.plugins.audit.models import audit_logs
from myhibachi.plugins.comms import CommsPlugin
from myhibachi.plugins.customer_export import CustomerExportPlugin
from myhibachi.plugins.deposits import DepositsPlugin
from myhibachi.plugins.deposits.models import deposits
from myhibachi.plugins.loyalty import LoyaltyPlugin
from myhibachi.plugins.preferences import PreferencesPlugin

FLAGS = {"FEATURE_FLAG_CUSTOMER_EXPORT": True, "FEATURE_FLAG_DIRECT_COMMUNICATIONS": True,
         "FEATURE_FLAG_AUDIT_LOGS": True, "FEATURE_FLAG_DEPOSIT_API": True, "FEATURE_FLAG_LOYALTY_POINTS": True,
         "FEATURE_FLAG_CUSTOMER_PREFERENCES": True}


class TipJar(Plugin):
    """A plugin installed later: its data appears in the export through the hook alone."""

    name = "tipjar"
    version = "0.1.0"
    flag = "FEATURE_FLAG_TIPJAR"  # off: the export holds its data all the same

    @hookimpl
    async def customer_export_sections(self, customer_id, conn, ctx):
        return {"tipjar.tips": [{"customer_id": customer_id, "amount_cents": 1500, "currency": "USD"}]}


def export_app(make_app, *extra):
    return make_app([CustomerExportPlugin(), CommsPlugin(), AuditPlugin(), DepositsPlugin(), LoyaltyPlugin(),
                     PreferencesPlugin(), *extra], flags=FLAGS)


async def test_customer_export_data(make_app, client_of, seed):
    """Broken on purpose by not calling the sections hook: payments, messages, loyalty and the
    tip jar are missing (red); by skipping the audit: no audit rows (red)."""
    app = export_app(make_app, TipJar())
    customer = await seed.customer(email="noor@example.com", name="Noor Haddad", phone="+12025550141")
    booking = await seed.booking(customer, datetime(2027, 3, 14, 23, 0, tzinfo=timezone.utc))
    async with seed.db.transaction() as conn:  # a paid deposit, as the deposits plugin stores one
        await conn.run(sa.insert(deposits).values(
            id=uuid.uuid4(), booking_id=booking, customer_id=customer, amount_cents=12345, currency="USD",
            status="succeeded", intent_id="pi_export_1", captured_cents=12345, client_secret="secret_xyz"))
    staff = await seed.staff("comms.send", "loyalty.write", "customers.export")
    async with client_of(app, headers=staff) as c:
        sent = await c.post("/v1/communications/sms/send", json={"customer_id": str(customer), "body": "Chef at 6"},
                            headers={"Idempotency-Key": "x1"})
        assert sent.status_code == 202, sent.text
        earned = await c.post(f"/v1/customers/{customer}/loyalty/earn", json={"points": 250, "reason": "welcome"},
                              headers={"Idempotency-Key": "x2"})
        assert earned.status_code == 201, earned.text
    async with client_of(app, headers=seed.token(customer)) as c:
        assert (await c.put(f"/v1/customers/{customer}/preferences", json={"language": "ar"})).status_code == 200
        got = await c.get(f"/v1/customers/{customer}/export")
        assert got.status_code == 200, got.text
        record = got.json()
        zipped = await c.get(f"/v1/customers/{customer}/export", params={"format": "csv"})
        pdf = await c.get(f"/v1/customers/{customer}/export", params={"format": "pdf"})

    sections = record["sections"]
    [profile] = sections["profile"]
    assert (profile["name"], profile["email"], profile["phone"]) == ("Noor Haddad", "noor@example.com", "+12025550141")
    assert [b["id"] for b in sections["bookings"]] == [str(booking)]
    [payment] = sections["deposits.payments"]
    assert (payment["amount_cents"], payment["currency"], payment["status"]) == (12345, "USD", "succeeded")
    assert "client_secret" not in payment and "secret_xyz" not in got.text
    assert [(m["channel"], m["body"], m["to"]) for m in sections["comms.messages"]] == \
        [("sms", "Chef at 6", "+12025550141")]
    assert [t["points"] for t in sections["loyalty.transactions"]] == [250]
    assert sections["preferences.current"][0]["language"] == "ar"
    assert sections["preferences.changes"][0]["changes"]["language"] == {"old": "en", "new": "ar"}
    assert sections["tipjar.tips"] == [{"customer_id": str(customer), "amount_cents": 1500, "currency": "USD"}]

    assert zipped.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(zipped.content))
    assert set(archive.namelist()) == {f"{name}.csv" for name in sections}
    assert "Noor Haddad" in archive.read("profile.csv").decode()
    assert "12345" in archive.read("deposits.payments.csv").decode()

    assert pdf.headers["content-type"] == "application/pdf"
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "Noor Haddad" in text and "2027-03-14" in text and "123.45 USD" in text

    async with seed.db.read() as conn:
        audited = await conn.fetch_all(sa.select(audit_logs).where(audit_logs.c.action == "customer.exported")
                                       .order_by(audit_logs.c.seq))
    assert [(a["actor_kind"], a["resource_id"], a["changes"]["format"]["new"]) for a in audited] == \
        [("customer", str(customer), f) for f in ("json", "csv", "pdf")]


async def test_export_access_and_bad_input(make_app, client_of, seed):
    app = export_app(make_app)
    customer, other = await seed.customer(), await seed.customer()
    url = f"/v1/customers/{customer}/export"
    async with client_of(app, headers=seed.token(other)) as c:
        assert (await c.get(url)).status_code == 404
    async with client_of(app, headers=await seed.staff("comms.read")) as c:
        refused = await c.get(url)
        assert refused.status_code == 403 and refused.json()["permission"] == "customers.export"
    async with client_of(app, headers=await seed.staff("customers.export")) as c:
        bad = await c.get(url, params={"format": "xml"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.format"
        assert (await c.get(f"/v1/customers/{uuid.uuid4()}/export")).status_code == 404
        staff_export = await c.get(url)
        assert staff_export.status_code == 200 and json.loads(staff_export.content)["customer_id"] == str(customer)
    async with seed.db.read() as conn:
        audited = await conn.fetch_all(sa.select(audit_logs.c.actor_kind).where(
            audit_logs.c.action == "customer.exported"))
    assert [a["actor_kind"] for a in audited] == ["api_key"]


async def test_hook_customer_export_sections(make_app, client_of, seed):
    """Every loaded plugin contributes, its flag on or off; a plugin that answers None adds nothing."""

    class Quiet(Plugin):
        name = "quiet"
        version = "0.1.0"

        @hookimpl
        def customer_export_sections(self, customer_id, conn, ctx):
            return None

    app = make_app([CustomerExportPlugin(), TipJar(), Quiet()], flags={"FEATURE_FLAG_CUSTOMER_EXPORT": True})
    customer = await seed.customer()
    async with client_of(app, headers=seed.token(customer)) as c:
        sections = (await c.get(f"/v1/customers/{customer}/export")).json()["sections"]
    assert set(sections) == {"profile", "bookings", "tipjar.tips"}


async def test_hook_customer_erase(make_app, client_of, seed):
    """GDPR erasure: every plugin's personal data goes through the hook, the profile is
    anonymised and disabled, payments and the consent history stay, and it is audited.

    Broken on purpose by not calling the hook: the message and preferences stay (red)."""
    from myhibachi.core.customers import find_by_email, get_customer
    from myhibachi.plugins.comms.models import comms_messages
    from myhibachi.plugins.preferences.models import customer_preferences, preference_changes

    app = export_app(make_app)
    customer = await seed.customer(email="zoe@example.com", name="Zoe Park", phone="+12025550161")
    other = await seed.customer(email="kim@example.com")
    booking = await seed.booking(customer, datetime(2027, 5, 1, 22, 0, tzinfo=timezone.utc))
    async with seed.db.transaction() as conn:
        await conn.run(sa.insert(deposits).values(
            id=uuid.uuid4(), booking_id=booking, customer_id=customer, amount_cents=9000, currency="USD",
            status="succeeded", intent_id="pi_erase_1", captured_cents=9000))
    async with client_of(app, headers=await seed.staff("comms.send")) as c:
        for who, key in ((customer, "a"), (other, "b")):
            sent = await c.post("/v1/communications/email/send", headers={"Idempotency-Key": key},
                                json={"customer_id": str(who), "subject": "Hi", "text": "Your booking"})
            assert sent.status_code == 202, sent.text
        assert (await c.delete(f"/v1/customers/{customer}")).status_code == 403
    async with client_of(app, headers=seed.token(customer)) as c:
        assert (await c.put(f"/v1/customers/{customer}/preferences", json={"language": "ko"})).status_code == 200
        assert (await c.delete(f"/v1/customers/{other}")).status_code == 404
        gone = await c.delete(f"/v1/customers/{customer}")
        assert gone.status_code == 204, gone.text

    ctx = app.state.ctx
    async with seed.db.read() as conn:
        profile = await get_customer(conn, ctx, customer)
        assert await find_by_email(conn, ctx, "zoe@example.com") is None
        messages = [r["customer_id"] for r in await conn.fetch_all(sa.select(comms_messages.c.customer_id))]
        prefs = await conn.fetch_all(sa.select(customer_preferences))
        history = await conn.fetch_all(sa.select(preference_changes))
        paid = await conn.fetch_all(sa.select(deposits.c.customer_id, deposits.c.amount_cents))
        audited = await conn.fetch_all(sa.select(audit_logs).where(audit_logs.c.action == "customer.erased"))
    assert (profile["name"], profile["phone"], profile["status"]) == ("Erased customer", None, "disabled")
    assert "zoe" not in profile["email"]
    assert messages == [other] and prefs == [] and len(history) == 1
    assert [(p["customer_id"], p["amount_cents"]) for p in paid] == [(customer, 9000)]
    assert [(a["actor_kind"], a["resource_id"]) for a in audited] == [("customer", str(customer))]
