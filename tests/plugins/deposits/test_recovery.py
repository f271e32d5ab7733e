"""A crash between the provider's call and our commit, the reconcile poller, and the offline
adapter (the embedded default) end to end."""
from __future__ import annotations

import json
import uuid
from datetime import timedelta

import httpx
import sqlalchemy as sa
from werkzeug import Response

from myhibachi.core.db import utcnow
from myhibachi.core.events import deliver_due
from myhibachi.core.models import offline_payments
from myhibachi.core.tasks import dispatch_once
from myhibachi.plugins.deposits import DepositsPlugin
from myhibachi.plugins.deposits.models import deposits
from myhibachi.plugins.deposits.service import reconcile
from tests.plugins.deposits.helpers import (
    BASE,
    FLAG,
    CrashPlugin,
    booking_status,
    charges_of,
    key,
    pending_booking,
    published,
    stripe_app,
)


def crashing_client(app, headers):
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers)


async def test_crash_after_confirm_is_completed_by_retry_or_reconcile(make_app, seed, clean_db, localstripe_url):
    app = stripe_app(make_app, localstripe_url, CrashPlugin(), adapter="crashing_stripe")
    ctx = app.state.ctx
    pay = ctx.ports.payments
    ana = await seed.customer()
    retried_booking, reconciled_booking = await pending_booking(seed, ana), await pending_booking(seed, ana)
    async with crashing_client(app, seed.token(ana)) as c:
        first = (await c.post(BASE, json={"booking_id": str(retried_booking)}, headers=key())).json()
        second = (await c.post(BASE, json={"booking_id": str(reconciled_booking)}, headers=key())).json()

        pay.crash_on.add("confirm_intent")
        crashed = await c.put(f"{BASE}/{first['id']}/confirm", json={"payment_method": "pm_card_visa"})
        assert crashed.status_code == 500
        # the card was charged, our transaction rolled back
        assert len(await charges_of(localstripe_url, first["intent_id"])) == 1
        assert (await c.get(f"{BASE}/{first['id']}")).json()["status"] == "requires_payment"
        retry = await c.put(f"{BASE}/{first['id']}/confirm", json={"payment_method": "pm_card_visa"})
        assert retry.status_code == 200 and retry.json()["status"] == "succeeded"
        assert len(await charges_of(localstripe_url, first["intent_id"])) == 1

        pay.crash_on.add("confirm_intent")
        assert (await c.put(f"{BASE}/{second['id']}/confirm",
                            json={"payment_method": "pm_card_visa"})).status_code == 500
        assert (await c.get(f"{BASE}/{second['id']}")).json()["status"] == "requires_payment"

    cfg = DepositsPlugin().settings
    assert await reconcile(ctx, cfg) == 0  # not stale yet
    async with clean_db.transaction() as conn:
        await conn.run(sa.update(deposits).values(updated_at=utcnow() - timedelta(minutes=cfg.stale_minutes + 1)))
    # the worker's dispatch loop runs the plugin's periodic job, which reconciles
    await dispatch_once(ctx)
    async with crashing_client(app, seed.token(ana)) as c:
        fixed = (await c.get(f"{BASE}/{second['id']}")).json()
    assert (fixed["status"], fixed["captured_cents"]) == ("succeeded", 12000)
    assert len(await charges_of(localstripe_url, second["intent_id"])) == 1
    assert sorted(p["payment_id"] for p in await published(clean_db, "payment.succeeded")) == \
        sorted([first["id"], second["id"]])
    while await deliver_due(ctx):
        pass
    assert await booking_status(clean_db, reconciled_booking) == "confirmed"


async def test_offline_deposit_end_to_end(make_app, client_of, seed, clean_db):
    app = make_app([DepositsPlugin(percent=10, minimum_cents=2500), CrashPlugin()], flags={FLAG: True},
                   payments_adapter="crashing_offline")
    ctx = app.state.ctx
    pay = ctx.ports.payments
    ana = await seed.customer()
    booking, slow_booking = await pending_booking(seed, ana), await pending_booking(seed, ana)
    idem = key()
    async with crashing_client(app, seed.token(ana)) as c:
        # a crash after the intent was created: the retry with the same key finds the same intent
        pay.crash_on.add("create_intent")
        assert (await c.post(BASE, json={"booking_id": str(booking)}, headers=idem)).status_code == 500
        created = await c.post(BASE, json={"booking_id": str(booking)}, headers=idem)
        assert created.status_code == 201, created.text
        dep = created.json()
        assert dep["amount_cents"] == 6000  # 10% of 60000, above the 2500 minimum
        async with clean_db.read() as conn:
            intents = await conn.scalars(sa.select(offline_payments.c.id))
        assert [f"pi_{i.hex}" for i in intents] == [dep["intent_id"]]

        declined = await c.put(f"{BASE}/{dep['id']}/confirm", json={"payment_method": "pm_card_chargeDeclined"})
        assert (declined.json()["status"], declined.json()["failure_reason"]) == ("failed", "card_declined")
        paid = await c.put(f"{BASE}/{dep['id']}/confirm", json={"payment_method": "pm_card_visa"})
        assert (paid.json()["status"], paid.json()["captured_cents"]) == ("succeeded", 6000)

        slow = (await c.post(BASE, json={"booking_id": str(slow_booking)}, headers=key())).json()
        processing = await c.put(f"{BASE}/{slow['id']}/confirm", json={"payment_method": "pm_card_processing"})
        assert processing.json()["status"] == "processing"
        refused = await c.put(f"{BASE}/{slow['id']}/cancel")
        assert refused.status_code == 409 and refused.json()["current_status"] == "processing"

    async with client_of(app, headers=await seed.staff("payments.*")) as c:
        part = await c.post(f"{BASE}/{dep['id']}/refunds", json={"amount_cents": 1000}, headers=key())
        assert part.status_code == 201 and part.json()["deposit"]["status"] == "partially_refunded"
        over = await c.post(f"{BASE}/{dep['id']}/refunds", json={"amount_cents": 5001}, headers=key())
        assert over.status_code == 409
        # the provider's refund event for what we already recorded changes nothing more
        body = (b'{"id": "evt_offline_1", "object": "event", "type": "charge.refunded", "data": {"object": '
                b'{"object": "charge", "payment_intent": "' + dep["intent_id"].encode() +
                b'", "amount": 6000, "amount_refunded": 1000}}}')
        hook = await c.post("/v1/webhooks/stripe", content=body,
                            headers={"Stripe-Signature": pay.sign_webhook(body)})
        assert hook.status_code == 200 and hook.json() == {"received": 1, "duplicates": 0}
        while await deliver_due(ctx):
            pass
        assert (await c.get(f"{BASE}/{dep['id']}")).json()["status"] == "partially_refunded"
        cancelled = await c.put(f"{BASE}/{dep['id']}/cancel")
        assert (cancelled.json()["status"], cancelled.json()["refunded_cents"]) == ("refunded", 6000)

    while await deliver_due(ctx):
        pass
    assert await booking_status(clean_db, booking) == "confirmed"
    assert await booking_status(clean_db, slow_booking) == "pending"
    assert [p["amount_cents"] for p in await published(clean_db, "payment.refunded")] == [1000, 5000]
    # the offline provider still holds the slow payment as processing: reconciling leaves it
    cfg = DepositsPlugin().settings
    assert await reconcile(ctx, cfg, now=utcnow() + timedelta(minutes=cfg.stale_minutes + 1)) == 0
    async with clean_db.read() as conn:
        left = [tuple(r.values()) for r in await conn.fetch_all(sa.select(offline_payments.c.status, offline_payments.c.amount_refunded_cents)
                                   .order_by(offline_payments.c.created_at))]
    assert [tuple(r) for r in left] == [("succeeded", 6000), ("processing", 0)]


async def test_a_retried_create_sends_stripe_the_same_idempotency_key(make_app, seed, clean_db, httpserver):
    def intent(request):
        return Response(json.dumps({
            "id": f"pi_{uuid.uuid4().hex[:24]}", "object": "payment_intent", "amount": 12000, "currency": "usd",
            "status": "requires_payment_method", "client_secret": "pi_stub_secret", "metadata": {},
            "payment_method": None, "last_payment_error": None, "latest_charge": None,
        }), content_type="application/json")

    httpserver.expect_request("/v1/payment_intents", method="POST").respond_with_handler(intent)
    app = stripe_app(make_app, httpserver.url_for("").rstrip("/"), CrashPlugin(), adapter="crashing_stripe")
    app.state.ctx.ports.payments.crash_on.add("create_intent")
    ana = await seed.customer()
    booking = await pending_booking(seed, ana)
    idem = key()
    async with crashing_client(app, seed.token(ana)) as c:
        assert (await c.post(BASE, json={"booking_id": str(booking)}, headers=idem)).status_code == 500
        created = await c.post(BASE, json={"booking_id": str(booking)}, headers=idem)
        assert created.status_code == 201, created.text
        other = await c.post(BASE, json={"booking_id": str(await pending_booking(seed, ana))}, headers=key())
    sent = [request.headers["Idempotency-Key"] for request, _ in httpserver.log]
    dep = created.json()
    assert sent == [f"deposit-{dep['id']}-create"] * 2 + [f"deposit-{other.json()['id']}-create"]
    assert httpserver.log[0][0].form["metadata[deposit_id]"] == dep["id"]
