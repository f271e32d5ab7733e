"""A customer's whole money journey over HTTP on localstripe, as a client team drives it."""
from __future__ import annotations

import uuid
from datetime import date, timedelta

import sqlalchemy as sa

from myhibachi.core.models import bookings
from myhibachi.plugins.deposits.models import deposit_refunds, deposits
from myhibachi.plugins.loyalty.models import loyalty_transactions
from myhibachi.plugins.payment_history.models import payment_ledger
from tests.plugins.deposits.helpers import BASE, booking_status, key, published, refunds_of
from tests.plugins.deposits.test_money_flow import BALANCE, money_app, redeliver, rows
from tests.core.conftest import sign_up

NY = "America/New_York"


async def test_journey_money_flow(make_app, client_of, seed, clean_db, drain, localstripe_url):
    """Sign up, availability by zip, quote, book (a retry with the same key: one booking), the
    deposit on localstripe, the balance, completion and its points; a second booking cancelled
    and its deposit refunded once though its cancellation is delivered twice.

    Broken on purpose: the deposits plugin without its booking.cancelled handler (the second
    deposit stays captured, red); loyalty earning on payment.succeeded as well (twice the points, red)."""
    app = money_app(make_app, localstripe_url)
    staff = await seed.staff("bookings.write")
    day = (date.today() + timedelta(days=9)).isoformat()
    async with client_of(app) as c:
        signed = await sign_up(c, app, {"email": "june@example.com", "password": "long enough pw",
                                        "name": "June Cook"})
        me = {"Authorization": f"Bearer {signed['access_token']}"}
        june = signed["customer"]["id"]

        slots = await c.get("/v1/availability", params={"from": day, "to": day, "time_zone": NY,
                                                        "party_size": 10, "zip_code": "10001"})
        assert slots.status_code == 200 and len(slots.json()["slots"]) >= 2, slots.text
        first, second = slots.json()["slots"][0], slots.json()["slots"][-1]
        body = {"starts_at": first["starts_at"], "time_zone": NY, "adults": 8, "children": 2,
                "address": "12 Grill Street, Springfield", "zip_code": "10001"}
        quote = await c.post("/v1/bookings/quote", json=body, headers=me)
        assert quote.status_code == 200, quote.text
        total = quote.json()["total_cents"]

        idem = key()
        booked = await c.post("/v1/bookings", json=body, headers={**me, **idem})
        retried = await c.post("/v1/bookings", json=body, headers={**me, **idem})
        assert booked.status_code == 201 and retried.json()["id"] == booked.json()["id"], retried.text
        booking = booked.json()
        assert booking["total_cents"] == total and booking["deposits"]["due_cents"] == total

        dep = (await c.post(BASE, json={"booking_id": booking["id"]}, headers={**me, **key()})).json()
        paid = await c.put(f"{BASE}/{dep['id']}/confirm", json={"payment_method": "pm_card_visa"}, headers=me)
        assert paid.status_code == 200 and paid.json()["status"] == "succeeded", paid.text
        await drain(app)
        assert await booking_status(clean_db, booking["id"]) == "confirmed"
        view = (await c.get(f"/v1/bookings/{booking['id']}", headers=me)).json()["deposits"]
        assert (view["deposit_status"], view["paid_cents"], view["due_cents"]) == (
            "succeeded", dep["amount_cents"], total - dep["amount_cents"])

        rest = await c.post(BALANCE, json={"booking_id": booking["id"], "payment_method": "pm_card_visa"},
                            headers={**me, **key()})
        assert rest.status_code == 201 and rest.json()["amount_cents"] == total - dep["amount_cents"], rest.text
        await drain(app)
        done = await c.post(f"/v1/bookings/{booking['id']}/complete", headers=staff)
        assert done.status_code == 200 and done.json()["deposits"]["due_cents"] == 0, done.text
        await drain(app)
        points = (await c.get(f"/v1/customers/{june}/loyalty", headers=me)).json()
        assert points["points_balance"] == total // 100

        other = await c.post("/v1/bookings", json={**body, "starts_at": second["starts_at"]},
                             headers={**me, **key()})
        assert other.status_code == 201, other.text
        other_dep = (await c.post(BASE, json={"booking_id": other.json()["id"]}, headers={**me, **key()})).json()
        await c.put(f"{BASE}/{other_dep['id']}/confirm", json={"payment_method": "pm_card_visa"}, headers=me)
        await drain(app)
        cancelled = await c.post(f"/v1/bookings/{other.json()['id']}/cancel", json={"reason": "plans changed"},
                                 headers=me)
        assert cancelled.status_code == 200, cancelled.text
        await drain(app)
        assert await redeliver(clean_db, "booking.cancelled", "deposits") == 1
        await drain(app)
        refunded = (await c.get(f"{BASE}/{other_dep['id']}", headers=me)).json()
        after = (await c.get(f"/v1/customers/{june}/loyalty", headers=me)).json()

    assert (refunded["status"], refunded["refunded_cents"]) == ("refunded", other_dep["amount_cents"])
    assert after["points_balance"] == total // 100  # the cancelled booking earned nothing
    stored = await rows(clean_db, sa.select(bookings.c.id, bookings.c.status).order_by(bookings.c.created_at))
    assert [(str(r["id"]), r["status"]) for r in stored] == [(booking["id"], "completed"),
                                                             (other.json()["id"], "cancelled")]
    payments = await rows(clean_db, sa.select(deposits.c.kind, deposits.c.status, deposits.c.captured_cents,
                                              deposits.c.refunded_cents).order_by(deposits.c.created_at))
    assert payments == [
        {"kind": "deposit", "status": "succeeded", "captured_cents": dep["amount_cents"], "refunded_cents": 0},
        {"kind": "balance", "status": "succeeded", "captured_cents": total - dep["amount_cents"],
         "refunded_cents": 0},
        {"kind": "deposit", "status": "refunded", "captured_cents": other_dep["amount_cents"],
         "refunded_cents": other_dep["amount_cents"]}]
    assert await rows(clean_db, sa.select(deposit_refunds.c.deposit_id, deposit_refunds.c.amount_cents)) == [
        {"deposit_id": uuid.UUID(other_dep["id"]), "amount_cents": other_dep["amount_cents"]}]
    assert [r["amount"] for r in await refunds_of(localstripe_url, other_dep["intent_id"])] == [
        other_dep["amount_cents"]]
    earned = await rows(clean_db, sa.select(loyalty_transactions.c.transaction_type, loyalty_transactions.c.points))
    assert earned == [{"transaction_type": "earn", "points": total // 100}]
    ledger = await rows(clean_db, sa.select(payment_ledger.c.kind, sa.func.sum(payment_ledger.c.amount_cents))
                        .where(payment_ledger.c.kind != "fee").group_by(payment_ledger.c.kind)
                        .order_by(payment_ledger.c.kind))
    assert [tuple(r.values()) for r in ledger] == [("charge", total + other_dep["amount_cents"]),
                                                   ("refund", other_dep["amount_cents"])]
    assert len(await published(clean_db, "booking.created")) == 2
    assert [e["payment_id"] for e in await published(clean_db, "payment.succeeded")] == [
        dep["id"], rest.json()["id"], other_dep["id"]]
    assert [e["booking_id"] for e in await published(clean_db, "booking.completed")] == [booking["id"]]
    assert [e["booking_id"] for e in await published(clean_db, "booking.cancelled")] == [other.json()["id"]]
    assert [(e["payment_id"], e["amount_cents"]) for e in await published(clean_db, "payment.refunded")] == [
        (other_dep["id"], other_dep["amount_cents"])]
