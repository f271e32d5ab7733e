"""Disputes from signed Stripe events through the core's webhook hub (localstripe has none),
answered with evidence through the payments port (the offline adapter records the submission)."""
from __future__ import annotations

import time

import sqlalchemy as sa

from myhibachi.core.events import deliver_due
from myhibachi.core.models import offline_outbox
from myhibachi.plugins.comms import CommsPlugin
from myhibachi.plugins.deposits import DepositsPlugin
from myhibachi.plugins.disputes import DisputesPlugin
from myhibachi.plugins.disputes.models import disputes
from myhibachi.plugins.payment_history import PaymentHistoryPlugin
from tests.plugins.deposits.helpers import FLAG, WEBHOOK_SECRET, event, pending_booking, published, signed

DISPUTES_FLAG = "FEATURE_FLAG_PAYMENT_DISPUTES"
HOOK = "/v1/webhooks/stripe"
BASE = "/v1/admin/payments/disputes"


def dispute(status: str = "needs_response", due_by: int | None = None) -> dict:
    return {"id": "dp_test_1", "object": "dispute", "amount": 12000, "currency": "usd", "charge": "ch_test_1",
            "payment_intent": "pi_test_1", "reason": "fraudulent", "status": status,
            "evidence_details": {"due_by": due_by}}


async def drain(ctx) -> None:
    while await deliver_due(ctx):
        pass


async def test_payment_dispute_handling(make_app, client_of, seed, clean_db):
    app = make_app([CommsPlugin(), DepositsPlugin(), PaymentHistoryPlugin(), DisputesPlugin()],
                   flags={FLAG: True, DISPUTES_FLAG: True},
                   payments_adapter="offline", stripe_webhook_secret=WEBHOOK_SECRET)
    ctx = app.state.ctx
    due = int(time.time()) + 7 * 86400
    created = event("charge.dispute.created", dispute(due_by=due))
    async with client_of(app) as c:
        body, headers = signed(created)
        got = await c.post(HOOK, content=body, headers=headers)
        assert got.status_code in (200, 202), got.text
        assert (await c.post(HOOK, content=body, headers=signed(created)[1])).status_code in (200, 202)  # replay
        forged = await c.post(HOOK, content=body, headers=signed(created, secret="whsec_wrong")[1])
        assert forged.status_code in (400, 401)
    await drain(ctx)
    async with ctx.db.read() as conn:
        rows = await conn.fetch_all(sa.select(disputes))
    assert [(r["provider_dispute_id"], r["amount_cents"], r["currency"], r["status"], int(r["due_by"].timestamp()))
            for r in rows] == [("dp_test_1", 12000, "USD", "needs_response", due)]
    opened = await published(ctx.db, "payment.dispute_opened")
    assert [(p["provider_dispute_id"], p["amount_cents"]) for p in opened] == [("dp_test_1", 12000)]

    ana = await seed.customer()
    booking = await pending_booking(seed, ana)
    staff = await seed.staff("payments.*")
    async with client_of(app, headers=staff) as c:
        listed = (await c.get(BASE)).json()["items"]
        assert [(d["provider_dispute_id"], d["status"]) for d in listed] == [("dp_test_1", "needs_response")]
        assert listed[0]["due_by"] is not None
        did = listed[0]["id"]
        empty = await c.post(f"{BASE}/{did}/respond", json={})
        assert empty.status_code == 422 and empty.headers["content-type"].startswith("application/problem+json")
        unknown = await c.post(f"{BASE}/{did}/respond", json={"booking_id": "00000000-0000-0000-0000-000000000000"})
        assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "body.booking_id"
        answered = await c.post(f"{BASE}/{did}/respond", json={
            "booking_id": str(booking), "signed_terms": "Deposits are non-refundable within 72 hours.",
            "messages": "Customer confirmed the date by text.", "file_ids": ["file_receipt"]})
        assert answered.status_code == 200, answered.text
        assert answered.json()["status"] == "under_review" and answered.json()["responded_at"]
        again = await c.post(f"{BASE}/{did}/respond", json={"messages": "more"})
        assert again.status_code == 409 and again.json()["current_status"] == "under_review"
    async with ctx.db.read() as conn:
        sent = await conn.fetch_all(sa.select(offline_outbox).where(offline_outbox.c.operation == "dispute.evidence"))
        stored = await conn.fetch_one(sa.select(disputes))
    assert len(sent) == 1 and sent[0]["payload"]["dispute_id"] == "dp_test_1"
    evidence = sent[0]["payload"]["evidence"]
    assert str(booking) in evidence["service_date"] and evidence["uncategorized_file"] == "file_receipt"
    assert evidence["refund_policy"].startswith("Deposits") and stored["evidence"] == evidence

    # the provider closes it; a late duplicate "created" does not reopen it
    async with client_of(app) as c:
        for e in (event("charge.dispute.closed", dispute("won", due)), event("charge.dispute.created", dispute())):
            b, h = signed(e)
            assert (await c.post(HOOK, content=b, headers=h)).status_code in (200, 202)
    await drain(ctx)
    async with client_of(app, headers=staff) as c:
        assert [d["status"] for d in (await c.get(BASE)).json()["items"]] == ["won"]
        assert (await c.get(BASE, params={"status": "needs_response"})).json()["items"] == []
    async with client_of(app, headers=await seed.staff("payments.read")) as c:
        assert (await c.post(f"{BASE}/{did}/respond", json={"messages": "x"})).status_code == 403


async def test_dispute_deadline_reminders(make_app, client_of, seed, clean_db):
    """The worker's periodic job emails the staff inbox (through comms) and publishes
    payment.dispute_due_soon once per dispute whose evidence deadline is within the window;
    a dispute already answered, or due later, is not reminded, and a second run sends nothing.
    Broken on purpose: remind_deadlines not stamping reminded_at (red: the second run emails again)."""
    from datetime import timedelta

    from myhibachi.core.db import utcnow
    from myhibachi.core.scheduled import run_periodic
    from myhibachi.plugins.comms.models import comms_messages
    from myhibachi.plugins.comms.service import _open
    from myhibachi.plugins.disputes import service

    app = make_app([CommsPlugin(), DepositsPlugin(), PaymentHistoryPlugin(),
                    DisputesPlugin(notify_email="disputes@myhibachi.dev", deadline_reminder_hours=48)],
                   flags={FLAG: True, DISPUTES_FLAG: True}, payments_adapter="offline",
                   stripe_webhook_secret=WEBHOOK_SECRET)
    ctx = app.state.ctx
    now = int(time.time())
    cases = {"dp_soon": ("needs_response", now + 86400), "dp_later": ("needs_response", now + 6 * 86400),
             "dp_answered": ("under_review", now + 86400), "dp_past": ("needs_response", now - 60)}
    async with client_of(app) as c:
        for provider_id, (status, due) in cases.items():
            body, headers = signed(event("charge.dispute.created", {**dispute(status, due), "id": provider_id}))
            assert (await c.post(HOOK, content=body, headers=headers)).status_code in (200, 202)
    await drain(ctx)

    async def emails() -> list[dict]:
        async with ctx.db.read() as conn:
            return [_open(ctx, r) for r in await conn.fetch_all(sa.select(comms_messages))]

    assert await run_periodic(ctx) >= 1  # the worker's periodic jobs, this one among them
    sent = await emails()
    assert [(m["channel"], m["to"], m["idempotency_key"]) for m in sent] == [
        ("email", "disputes@myhibachi.dev", f"disputes:{await dispute_id(ctx, 'dp_soon')}:deadline")]
    assert "dp_soon" in sent[0]["body"] and "120.00 USD" in sent[0]["body"] and sent[0]["subject"].startswith(
        "Dispute evidence due")
    due_soon = await published(ctx.db, "payment.dispute_due_soon")
    assert [p["provider_dispute_id"] for p in due_soon] == ["dp_soon"]

    async with ctx.db.transaction() as conn:  # the next run: nothing new to remind of
        assert await service.remind_deadlines(conn, ctx) == 0
    async with ctx.db.transaction() as conn:  # five days on, the later one is due soon
        assert await service.remind_deadlines(conn, ctx, now=utcnow() + timedelta(days=5)) == 1
    assert sorted(m["body"].split()[2] for m in await emails()) == ["dp_later", "dp_soon"]
    assert [p["provider_dispute_id"] for p in await published(ctx.db, "payment.dispute_due_soon")] == [
        "dp_soon", "dp_later"]
    async with client_of(app, headers=await seed.staff("payments.read")) as c:
        listed = {d["provider_dispute_id"]: d["reminded_at"] for d in (await c.get(BASE)).json()["items"]}
    assert {k for k, v in listed.items() if v} == {"dp_soon", "dp_later"}


async def dispute_id(ctx, provider_id: str) -> str:
    async with ctx.db.read() as conn:
        return str(await conn.scalar(sa.select(disputes.c.id).where(disputes.c.provider_dispute_id == provider_id)))
