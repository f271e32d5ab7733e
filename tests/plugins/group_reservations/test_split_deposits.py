"""A deposit per payer of a group's split bill, over HTTP on localstripe: each payer pays their
own share (their own PaymentIntent, once per Idempotency-Key, at most what the share owes), the
group's and its booking's deposit status reflect every share, cancelling the group refunds each
payer's deposit once, and replayed Stripe events change nothing."""
from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta

import sqlalchemy as sa

from myhibachi.core import tables
from myhibachi.core.db import utcnow
from myhibachi.core.events import deliver_due
from myhibachi.core.models import event_deliveries, outbox_events
from myhibachi.plugins.deposits import DepositsPlugin
from myhibachi.plugins.deposits.models import deposit_refunds, deposits
from myhibachi.plugins.group_reservations import GroupReservationsPlugin
from myhibachi.plugins.group_reservations.models import groups
from myhibachi.plugins.locations import LocationsPlugin
from tests.plugins.deposits.helpers import (
    API_KEY, FLAG, WEBHOOK_SECRET, charges_of, event, intents_for, key, published, refunds_of, signed,
)
from tests.plugins.group_reservations.test_group_reservations import FLAGS, NY, body, guest, location, rows

HOOK = "/v1/webhooks/stripe"


def split_app(make_app, localstripe_url):
    return make_app([LocationsPlugin(), DepositsPlugin(), GroupReservationsPlugin()], flags={**FLAGS, FLAG: True},
                    payments_adapter="stripe", stripe_api_key=API_KEY, stripe_api_base=localstripe_url,
                    stripe_webhook_secret=WEBHOOK_SECRET)


async def deliver(app) -> None:
    while await deliver_due(app.state.ctx):
        pass


async def redeliver(db, name: str) -> None:
    """Deliver the events called ``name`` again, as an at-least-once queue may."""
    async with db.transaction() as conn:
        ids = list(await conn.scalars(sa.select(outbox_events.c.id).where(outbox_events.c.name == name)))
        await conn.run(sa.update(event_deliveries).where(event_deliveries.c.event_id.in_(ids))
                       .values(status="pending", next_attempt_at=sa.func.now()))


async def test_each_payer_pays_their_own_share_deposit(make_app, client_of, customer, staff, clean_db,
                                                       localstripe_url):
    """Broken on purpose: without the payer check Bo pays Ana's share (red); without the cap the
    over-amount is charged (red); without the Idempotency-Key (route and derived id) the second
    request charges twice (red); with the booking confirmed on the first share (deposits'
    handler not skipping shares) the stations are confirmed half paid (red); with a split
    bill's status its latest deposit's, the group and its booking read paid half paid (red)."""
    app = split_app(make_app, localstripe_url)
    ana, bo, cy = await customer(), await customer(name="Bo Grill"), await customer(name="Cy Other")
    start = datetime.combine(utcnow().astimezone(NY).date() + timedelta(days=10), time(18))
    four = [guest("Ana"), guest("Bo", payer="Bo"), guest("Di", payer="Bo"), guest("Ed", payer="Bo", menu="filet")]
    billing = {"split": "by_guest", "payers": [{"name": "Ana"}, {"name": "Bo", "customer_id": str(bo.id)}]}
    async with client_of(app, headers=ana.headers) as c:
        await location(c, staff)
        nobody = await c.post("/v1/bookings/groups", json=body(start, four, billing={
            "split": "by_guest", "payers": [{"name": "Ana"}, {"name": "Bo", "customer_id": str(uuid.uuid4())}]}))
        made = await c.post("/v1/bookings/groups", json=body(start, four, billing=billing))
    assert nobody.status_code == 422 and nobody.json()["errors"][0]["field"] == "body.billing.payers.1.customer_id"
    assert made.status_code == 201, made.text
    g = made.json()
    owed = {s["payer"]: s["amount_cents"] for s in g["shares"]}
    assert g["deposit_status"] == "none" and owed["Bo"] > owed["Ana"] > 0
    pay = f"/v1/bookings/groups/{g['id']}/deposits"
    card = {"payment_method": "pm_card_visa"}

    async with client_of(app, headers=bo.headers) as c:
        others = await c.post(pay, json={"payer": "Ana", **card}, headers=key())
        over = await c.post(pay, json={"payer": "Bo", "amount_cents": owed["Bo"] + 1, **card}, headers=key())
    async with client_of(app, headers=cy.headers) as c:
        stranger = await c.post(pay, json={"payer": "Bo", **card}, headers=key())
    assert others.status_code == 404 and others.json()["errors"][0]["field"] == "body.payer", others.text
    assert over.status_code == 422 and over.json()["errors"][0]["field"] == "body.amount_cents", over.text
    assert stranger.status_code == 404
    assert await rows(clean_db, sa.select(deposits)) == []  # the refusals charged and stored nothing

    once = key()
    async with client_of(app, headers=ana.headers) as c:
        first = await c.post(pay, json={"payer": "Ana", **card}, headers=once)
        again = await c.post(pay, json={"payer": "Ana", **card}, headers=once)
        paid_twice = await c.post(pay, json={"payer": "Ana", **card}, headers=key())
        half = (await c.get(f"/v1/bookings/groups/{g['id']}")).json()
        booking = (await c.get(f"/v1/bookings/{g['billing_booking_id']}")).json()
    await deliver(app)
    assert first.status_code == 201 and first.json()["status"] == "succeeded", first.text
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
    assert paid_twice.status_code == 409, paid_twice.text
    ana_dep = first.json()
    assert ana_dep["amount_cents"] == min(owed["Ana"], 10000) and ana_dep["customer_id"] == str(ana.id)
    assert len(await intents_for(localstripe_url, ana_dep["id"])) == 1
    assert len(await charges_of(localstripe_url, ana_dep["intent_id"])) == 1  # one charge for the two requests
    assert half["deposit_status"] == "partially_paid" and booking["deposits"]["deposit_status"] == "partially_paid"
    assert {s["payer"]: s["deposit_status"] for s in half["shares"]} == {"Ana": "succeeded", "Bo": "none"}
    assert {r["status"] for r in await rows(clean_db, sa.select(tables.bookings.c.status))} == {"pending"}

    async with client_of(app, headers=bo.headers) as c:
        bo_paid = await c.post(pay, json={"payer": "Bo", "amount_cents": owed["Bo"], **card}, headers=key())
    assert bo_paid.status_code == 201 and bo_paid.json()["status"] == "succeeded", bo_paid.text
    bo_dep = bo_paid.json()
    assert (bo_dep["amount_cents"], bo_dep["customer_id"]) == (owed["Bo"], str(bo.id))
    await deliver(app)
    # a replayed Stripe event (the same one twice, then its content anew) changes nothing
    succeeded = event("payment_intent.succeeded", {"id": bo_dep["intent_id"], "object": "payment_intent",
                                                   "amount": owed["Bo"], "amount_received": owed["Bo"]})
    async with client_of(app) as c:
        for evt in (succeeded, succeeded, {**succeeded, "id": f"evt_{uuid.uuid4().hex[:20]}"}):
            assert (await c.post(HOOK, content=(b := signed(evt))[0], headers=b[1])).status_code == 200
            await deliver(app)
    async with client_of(app, headers=ana.headers) as c:
        full = (await c.get(f"/v1/bookings/groups/{g['id']}")).json()
    assert full["deposit_status"] == "succeeded"
    assert {r["status"] for r in await rows(clean_db, sa.select(tables.bookings.c.status))} == {"confirmed"}
    stored = {str(r["id"]): r for r in await rows(clean_db, sa.select(deposits))}
    assert {k: (r["share"], r["shares"], r["status"], r["captured_cents"]) for k, r in stored.items()} == {
        ana_dep["id"]: ("Ana", 2, "succeeded", ana_dep["amount_cents"]),
        bo_dep["id"]: ("Bo", 2, "succeeded", owed["Bo"])}
    assert sorted(p["payment_id"] for p in await published(clean_db, "payment.succeeded")) == sorted(stored)

    async with client_of(app, headers=ana.headers) as c:
        cancelled = await c.post(f"/v1/bookings/groups/{g['id']}/cancel", json={"reason": "rained out"})
        twice = await c.post(f"/v1/bookings/groups/{g['id']}/cancel", json={})
    assert cancelled.status_code == 200, cancelled.text
    assert twice.status_code == 409
    await deliver(app)
    await redeliver(clean_db, "booking.cancelled")
    await deliver(app)
    async with client_of(app) as c:  # the refund's event arriving late changes nothing either
        for dep in (ana_dep, bo_dep):
            charge = {"id": f"ch_{dep['id'][:8]}", "object": "charge", "payment_intent": dep["intent_id"],
                      "amount": dep["amount_cents"], "amount_captured": dep["amount_cents"],
                      "amount_refunded": dep["amount_cents"]}
            assert (await c.post(HOOK, content=(b := signed(event("charge.refunded", charge)))[0],
                                 headers=b[1])).status_code == 200
            await deliver(app)
        after = (await c.get(f"/v1/bookings/groups/{g['id']}", headers=ana.headers)).json()
    refunds = await rows(clean_db, sa.select(deposit_refunds))
    assert sorted((str(r["deposit_id"]), r["amount_cents"]) for r in refunds) == sorted(
        [(ana_dep["id"], ana_dep["amount_cents"]), (bo_dep["id"], owed["Bo"])])
    for dep in (ana_dep, bo_dep):
        assert len(await refunds_of(localstripe_url, dep["intent_id"])) == 1
    assert sorted((p["payment_id"], p["amount_cents"]) for p in await published(clean_db, "payment.refunded")) == \
        sorted([(ana_dep["id"], ana_dep["amount_cents"]), (bo_dep["id"], owed["Bo"])])
    assert {r["status"] for r in await rows(clean_db, sa.select(deposits.c.status))} == {"refunded"}
    assert after["deposit_status"] == "refunded"
    assert {r["status"] for r in await rows(clean_db, sa.select(tables.bookings.c.status))} == {"cancelled"}
    assert len(await published(clean_db, "booking.cancelled")) == 1


async def test_staff_pay_a_share_and_a_declined_share_is_paid_again(make_app, client_of, customer, staff, clean_db):
    """Offline payments. Staff with payments.write pay any payer's share (theirs, not staff's);
    a decline is kept as failed and a new key pays; once deposits are taken the billing is
    fixed and the station holding them stays (409). Broken on purpose: without the paying
    check the billing change is taken (red); without the station check the deposits' station
    is cancelled, refunding them (red)."""
    app = make_app([LocationsPlugin(), DepositsPlugin(), GroupReservationsPlugin()], flags={**FLAGS, FLAG: True})
    ana, bo = await customer(), await customer(name="Bo Grill")
    start = datetime.combine(utcnow().astimezone(NY).date() + timedelta(days=10), time(18))
    two = [guest("Ana"), guest("Al"), guest("Bo", table=2, payer="Bo"), guest("Bea", table=2, payer="Bo")]
    billing = {"split": "by_guest", "payers": [{"name": "Ana"}, {"name": "Bo", "customer_id": str(bo.id)}]}
    async with client_of(app, headers=ana.headers) as c:
        await location(c, staff)
        made = await c.post("/v1/bookings/groups", json=body(start, two, billing=billing))
        assert made.status_code == 201, made.text
        g = made.json()
    pay = f"/v1/bookings/groups/{g['id']}/deposits"
    async with client_of(app, headers=await staff(["payments.read"])) as c:
        denied = await c.post(pay, json={"payer": "Bo", "payment_method": "pm_card_visa"}, headers=key())
    async with client_of(app, headers=await staff(["payments.write"])) as c:
        unknown = await c.post(pay, json={"payer": "Zed", "payment_method": "pm_card_visa"}, headers=key())
        by_staff = await c.post(pay, json={"payer": "Bo", "payment_method": "pm_card_visa"}, headers=key())
    async with client_of(app, headers=ana.headers) as c:
        declined = await c.post(pay, json={"payer": "Ana", "payment_method": "pm_card_chargeDeclined"}, headers=key())
        retried = await c.post(pay, json={"payer": "Ana", "payment_method": "pm_card_visa"}, headers=key())
        rebill = await c.put(f"/v1/bookings/groups/{g['id']}/guests", json={"guests": two, "billing": {
            "split": "by_guest", "payers": [{"name": "Ana"}, {"name": "Bo"}, {"name": "Cy"}]}})
        other = next(t["table_no"] for t in g["tables"] if t["booking_id"] != g["billing_booking_id"])
        leave = await c.put(f"/v1/bookings/groups/{g['id']}/guests", json={
            "guests": [{**x, "table": other} for x in two]})  # the table holding the deposits would go
        got = (await c.get(f"/v1/bookings/groups/{g['id']}")).json()
    assert denied.status_code == 403
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "body.payer"
    assert by_staff.status_code == 201 and by_staff.json()["customer_id"] == str(bo.id), by_staff.text
    assert (declined.status_code, declined.json()["status"]) == (201, "failed")
    assert retried.status_code == 201 and retried.json()["status"] == "succeeded", retried.text
    assert rebill.status_code == 409 and "billing is fixed" in rebill.json()["detail"], rebill.text
    assert leave.status_code == 409 and "holds the payers' deposits" in leave.json()["detail"], leave.text
    assert got["deposit_status"] == "succeeded" and len(got["billing"]["payers"]) == 2
    stored = await rows(clean_db, sa.select(deposits.c.share, deposits.c.status, deposits.c.customer_id)
                        .order_by(deposits.c.created_at))
    assert [(r["share"], r["status"], r["customer_id"]) for r in stored] == [
        ("Bo", "succeeded", bo.id), ("Ana", "failed", ana.id), ("Ana", "succeeded", ana.id)]
    assert [p["reason"] for p in await published(clean_db, "payment.failed")] == ["card_declined"]


async def test_a_merged_payer_pays_as_the_customer_kept(make_app, client_of, customer, staff, clean_db):
    """Broken on purpose: without the plugin's customer_merge the kept customer's payment is
    refused as another payer's (red)."""
    from myhibachi.plugins.customer_merge import CustomerMergePlugin

    app = make_app([LocationsPlugin(), DepositsPlugin(), GroupReservationsPlugin(), CustomerMergePlugin()],
                   flags={**FLAGS, FLAG: True, "FEATURE_FLAG_CUSTOMER_MERGE": True})
    ana, old, kept = await customer(), await customer(name="Bo Grill"), await customer(name="Bo Grill")
    start = datetime.combine(utcnow().astimezone(NY).date() + timedelta(days=10), time(18))
    billing = {"split": "by_guest", "payers": [{"name": "Ana"}, {"name": "Bo", "customer_id": str(old.id)}]}
    async with client_of(app, headers=ana.headers) as c:
        await location(c, staff)
        made = await c.post("/v1/bookings/groups", json=body(start, [guest("Ana"), guest("Bo", payer="Bo")],
                                                             billing=billing))
    assert made.status_code == 201, made.text
    async with client_of(app, headers=await staff(["customers.merge"])) as c:
        merged = await c.post("/v1/admin/customers/merge", json={"source_id": str(old.id), "target_id": str(kept.id)})
    assert merged.status_code == 200, merged.text
    async with client_of(app, headers=kept.headers) as c:
        paid = await c.post(f"/v1/bookings/groups/{made.json()['id']}/deposits",
                            json={"payer": "Bo", "payment_method": "pm_card_visa"}, headers=key())
    assert paid.status_code == 201 and paid.json()["customer_id"] == str(kept.id), paid.text
    [stored] = await rows(clean_db, sa.select(groups.c.billing))
    assert stored["billing"]["payers"][1]["customer_id"] == str(kept.id)


async def test_one_share_paid_at_once_with_two_keys_is_charged_once(make_app, client_of, customer, staff,
                                                                    clean_db):
    """Two requests for Bo's share at the same moment, each with its own key, while Ana pays
    hers: Bo's share is charged once (the other answers 409), Ana's is taken too. Broken on
    purpose: without the row locks of pay_share (the group's, and the booking's in deposits) both
    of Bo's are charged (red; either lock alone keeps it to one)."""
    import asyncio

    app = make_app([LocationsPlugin(), DepositsPlugin(), GroupReservationsPlugin()], flags={**FLAGS, FLAG: True})
    ana, bo = await customer(), await customer(name="Bo Grill")
    start = datetime.combine(utcnow().astimezone(NY).date() + timedelta(days=10), time(18))
    billing = {"split": "by_guest", "payers": [{"name": "Ana"}, {"name": "Bo", "customer_id": str(bo.id)}]}
    async with client_of(app, headers=ana.headers) as c:
        await location(c, staff)
        made = await c.post("/v1/bookings/groups", json=body(start, [guest("Ana"), guest("Bo", payer="Bo")],
                                                             billing=billing))
    assert made.status_code == 201, made.text
    pay = f"/v1/bookings/groups/{made.json()['id']}/deposits"
    card = {"payment_method": "pm_card_visa"}
    async with client_of(app) as c:
        answers = await asyncio.gather(
            c.post(pay, json={"payer": "Bo", **card}, headers={**bo.headers, **key()}),
            c.post(pay, json={"payer": "Bo", **card}, headers={**bo.headers, **key()}),
            c.post(pay, json={"payer": "Ana", **card}, headers={**ana.headers, **key()}))
    assert sorted(r.status_code for r in answers[:2]) == [201, 409], [r.text for r in answers]
    assert answers[2].status_code == 201, answers[2].text
    stored = await rows(clean_db, sa.select(deposits.c.share, deposits.c.status))
    assert sorted((r["share"], r["status"]) for r in stored) == [("Ana", "succeeded"), ("Bo", "succeeded")]
    assert len(await published(clean_db, "payment.succeeded")) == 2
