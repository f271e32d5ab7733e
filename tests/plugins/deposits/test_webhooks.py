"""Stripe webhooks: signature, replay, out-of-order events, disputes."""
from __future__ import annotations

import time

import sqlalchemy as sa

from myhibachi.core.events import deliver_due
from myhibachi.core.models import webhook_events
from myhibachi.plugins.deposits.models import payment_disputes
from tests.plugins.deposits.helpers import (
    BASE,
    event,
    key,
    pending_booking,
    published,
    signed,
    stripe_app,
)

HOOK = "/v1/webhooks/stripe"


async def test_stripe_webhook_signature_replay_and_order(make_app, client_of, seed, clean_db, localstripe_url):
    """Through the core's hub: a bad signature is a 400 problem recording nothing; a replayed
    event is one hub event and one state change. Broken on purpose by dropping the hub's
    ON CONFLICT (the replay raised) and by publishing duplicates (two webhook.stripe): red."""
    app = stripe_app(make_app, localstripe_url)
    ana = await seed.customer()
    staff = await seed.staff("payments.*")
    deps = []
    async with client_of(app, headers=staff) as c:
        for _ in range(3):
            booking = await pending_booking(seed, ana)
            deps.append((await c.post(BASE, json={"booking_id": str(booking)}, headers=key())).json())
    paid, refunded_first, failing = deps

    succeeded = event("payment_intent.succeeded", {"id": paid["intent_id"], "object": "payment_intent",
                                                   "amount": 12000, "amount_received": 12000, "currency": "usd",
                                                   "status": "succeeded"})
    body, headers = signed(succeeded)
    async with client_of(app) as c:
        missing = await c.post(HOOK, content=body, headers={"Content-Type": "application/json"})
        assert missing.status_code == 400 and missing.json()["type"].endswith("/invalid-signature")
        forged = await c.post(HOOK, content=body, headers=signed(succeeded, secret="whsec_wrong")[1])
        assert forged.status_code == 400
        tampered = await c.post(HOOK, content=body.replace(b"12000", b"99999"), headers=headers)
        assert tampered.status_code == 400
        stale = await c.post(HOOK, content=body, headers=signed(succeeded, at=int(time.time()) - 3600)[1])
        assert stale.status_code == 400 and "tolerance" in stale.json()["detail"].lower()
        assert (await c.get(f"{BASE}/{paid['id']}", headers=staff)).json()["status"] == "requires_payment"
        # refused requests record nothing and publish nothing
        assert await published(clean_db, "webhook.stripe") == []

        ok = await c.post(HOOK, content=body, headers=headers)
        assert ok.status_code == 200, ok.text
        assert ok.json() == {"received": 1, "duplicates": 0}
        await deliver(app)
        replay = await c.post(HOOK, content=body, headers=signed(succeeded)[1])
        assert replay.status_code == 200 and replay.json() == {"received": 1, "duplicates": 1}
        await deliver(app)
        assert (await c.get(f"{BASE}/{paid['id']}", headers=staff)).json()["status"] == "succeeded"
        # one hub event and one state change for the two deliveries of the Stripe event
        assert [p["event_id"] for p in await published(clean_db, "webhook.stripe")] == [succeeded["id"]]
        assert [p["payment_id"] for p in await published(clean_db, "payment.succeeded")] == [paid["id"]]

        async def post_and_deliver(evt) -> None:
            r = await c.post(HOOK, content=(b := signed(evt))[0], headers=b[1])
            assert r.status_code == 200, r.text
            await deliver(app)

        # the refund's event arrives before the payment's: the deposit never moves back
        charge = {"id": "ch_out_of_order", "object": "charge", "payment_intent": refunded_first["intent_id"],
                  "amount": 12000, "amount_captured": 12000, "amount_refunded": 12000, "currency": "usd"}
        await post_and_deliver(event("charge.refunded", charge))
        await post_and_deliver(event("payment_intent.succeeded", {
            "id": refunded_first["intent_id"], "object": "payment_intent", "amount": 12000, "amount_received": 12000}))
        got = (await c.get(f"{BASE}/{refunded_first['id']}", headers=staff)).json()
        assert (got["status"], got["captured_cents"], got["refunded_cents"]) == ("refunded", 12000, 12000)

        await post_and_deliver(event("payment_intent.payment_failed", {
            "id": failing["intent_id"], "object": "payment_intent",
            "last_payment_error": {"code": "card_declined", "message": "Your card was declined."}}))
        assert (await c.get(f"{BASE}/{failing['id']}", headers=staff)).json()["status"] == "failed"
        # a failure event for a paid deposit is out of date: ignored
        await post_and_deliver(event("payment_intent.payment_failed", {"id": paid["intent_id"], "object": "payment_intent"}))
        assert (await c.get(f"{BASE}/{paid['id']}", headers=staff)).json()["status"] == "succeeded"

        await post_and_deliver(event("charge.dispute.created", {
            "id": "dp_1", "object": "dispute", "charge": "ch_paid", "payment_intent": paid["intent_id"],
            "amount": 12000, "currency": "usd", "reason": "fraudulent", "status": "needs_response"}))
        await post_and_deliver(event("payment_intent.succeeded", {"id": "pi_not_ours", "object": "payment_intent"}))

    assert [(p["payment_id"], p["reason"]) for p in await published(clean_db, "payment.failed")] == [
        (failing["id"], "card_declined")]
    assert [(p["payment_id"], p["amount_cents"]) for p in await published(clean_db, "payment.refunded")] == [
        (refunded_first["id"], 12000)]
    async with clean_db.read() as conn:
        disputes = await conn.fetch_all(sa.select(payment_disputes))
        recorded = await conn.fetch_all(sa.select(webhook_events.c.provider, webhook_events.c.data_enc))
    assert [(d["provider_dispute_id"], str(d["deposit_id"]), d["amount_cents"], d["currency"], d["reason"])
            for d in disputes] == [("dp_1", paid["id"], 12000, "USD", "fraudulent")]
    assert len(recorded) == 7 and {r["provider"] for r in recorded} == {"stripe"}
    assert all(b"payment_intent" not in r["data_enc"].encode() for r in recorded)  # sealed at rest


async def deliver(app) -> None:
    while await deliver_due(app.state.ctx):
        pass


async def test_a_signed_but_malformed_stripe_event_is_a_422_naming_the_field(make_app, client_of, clean_db,
                                                                             localstripe_url):
    """A valid signature does not make a body well formed: an id over 255 characters, a
    non-numeric dispute amount, ``data`` or ``data.object`` not an object, a dispute's
    ``evidence_details`` not an object are each a 422 problem naming the field, record no hub
    event and publish nothing (they were 500s). Broken on purpose by restoring the old
    ``stripe_events`` (id and type only checked for being strings): red."""
    app = stripe_app(make_app, localstripe_url)
    dispute = {"id": "dp_bad", "object": "dispute", "charge": "ch_1", "amount": 100, "currency": "usd"}
    cases = [
        ({**event("payment_intent.succeeded", {"id": "pi_1"}), "id": "evt_" + "x" * 300}, "body.id"),
        (event("charge.dispute.created", {**dispute, "amount": "lots"}), "body.data.object.amount"),
        ({**event("charge.dispute.created", dispute), "data": ["not", "an", "object"]}, "body.data"),
        ({**event("charge.dispute.created", dispute), "data": {"object": "dp_bad"}}, "body.data.object"),
        (event("charge.dispute.created", {**dispute, "evidence_details": {"due_by": "soon"}}),
         "body.data.object.evidence_details"),
    ]
    async with client_of(app) as c:
        for evt, field in cases:
            body, headers = signed(evt)
            r = await c.post(HOOK, content=body, headers=headers)
            assert r.status_code == 422, (field, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["errors"][0]["field"] == field, r.text
    async with clean_db.read() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(webhook_events)) == 0
    assert await published(clean_db, "webhook.stripe") == []
