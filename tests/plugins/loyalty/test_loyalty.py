"""Loyalty points: earning on payments, redeeming on bookings, refunds, expiry, tiers, races."""
from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import date, datetime, timedelta, timezone

import sqlalchemy as sa

from myhibachi.core.events import deliver_due
from myhibachi.core.tasks import dispatch_once
from myhibachi.plugins.audit import AuditPlugin
from myhibachi.plugins.audit.models import audit_logs
from myhibachi.plugins.deposits import DepositsPlugin
from myhibachi.plugins.loyalty import LoyaltyPlugin
from myhibachi.plugins.loyalty import service
from myhibachi.plugins.loyalty.models import loyalty_accounts, loyalty_transactions

FLAG = "FEATURE_FLAG_LOYALTY_POINTS"
T0 = datetime(2026, 1, 15, 12, 0, tzinfo=timezone.utc)


def local_start(days_ahead: int = 7, hour: int = 17) -> str:
    day = date.today() + timedelta(days=days_ahead)
    return datetime.combine(day, datetime.min.time()).replace(hour=hour).isoformat()


def booking_body(**over) -> dict:
    # 8 adults and 2 children: the base price is the $550 minimum order.
    body = {"starts_at": local_start(), "time_zone": "America/New_York", "adults": 8, "children": 2,
            "address": "12 Grill Street, Springfield", "zip_code": "12345"}
    body.update(over)
    return body


async def paid(seed, ctx, customer, cents, payment_id=None) -> str:
    payment_id = payment_id or f"pi_{uuid.uuid4().hex[:12]}"
    await seed.publish(ctx, "payment.succeeded", {"payment_id": payment_id, "booking_id": None, "currency": "usd",
                                                  "customer_id": str(customer), "amount_cents": cents})
    return payment_id


async def refunded(seed, ctx, customer, payment_id, cents, refund_id=None) -> None:
    await seed.publish(ctx, "payment.refunded", {"payment_id": payment_id, "booking_id": None, "refund_id": refund_id,
                                                 "customer_id": str(customer), "amount_cents": cents,
                                                 "currency": "usd"})


async def account(db, customer) -> dict:
    async with db.read() as conn:
        return await service.find_account(conn, customer)


async def ledger_of(db, customer) -> list[dict]:
    async with db.read() as conn:
        rows = await conn.fetch_all(
            sa.select(loyalty_transactions).join(loyalty_accounts)
            .where(loyalty_accounts.c.customer_id == customer).order_by(loyalty_transactions.c.seq))
    return [dict(r) for r in rows]


async def verified(db) -> dict:
    async with db.read() as conn:
        result = await service.verify(conn)
    assert result["mismatches"] == [], result
    return result


async def test_customer_loyalty_points(make_app, client_of, seed, clean_db):
    app = make_app([DepositsPlugin(), LoyaltyPlugin(), AuditPlugin()], flags={FLAG: True})
    ctx = app.state.ctx
    ana = await seed.customer(email="ana@example.com")
    bob = await seed.customer(email="bob@example.com")
    ana_auth = seed.token(ana)
    url = f"/v1/customers/{ana}/loyalty"

    # $320.99 paid earns 320 points; the same payment delivered again earns nothing more
    payment = await paid(seed, ctx, ana, 32099)
    await paid(seed, ctx, ana, 32099, payment_id=payment)
    async with client_of(app, headers=ana_auth) as c:
        got = (await c.get(url)).json()
        assert (got["points_balance"], got["lifetime_points"], got["tier"]) == (320, 320, "bronze")
        assert (got["redeemable_points"], got["redeemable_value_cents"]) == (300, 3000)
        assert got["next_expiry_points"] == 320

        # the quote shows the discount; asking for more than the balance is refused
        quote = await c.post("/v1/bookings/quote", json=booking_body(loyalty={"points": 200}))
        assert quote.status_code == 200, quote.text
        assert quote.json()["lines"][-1] == {"code": "loyalty.redeem", "label": "200 loyalty points",
                                             "amount_cents": -2000}
        assert quote.json()["total_cents"] == 55000 - 2000
        too_many = await c.post("/v1/bookings/quote", json=booking_body(loyalty={"points": 400}))
        assert too_many.status_code == 422 and "not that many" in too_many.json()["detail"]
        odd = await c.post("/v1/bookings", json=booking_body(loyalty={"points": 150}))
        assert odd.status_code == 422 and "multiple of 100" in odd.json()["detail"]

        # booking with 200 points: $20 off, debited when the booking is created
        made = await c.post("/v1/bookings", json=booking_body(loyalty={"points": 200}))
        assert made.status_code == 201, made.text
        booking = made.json()
        assert booking["total_cents"] == 53000
        assert (await c.get(url)).json()["points_balance"] == 120

        # redeem route: 100 more points on a second booking, once per Idempotency-Key
        second = (await c.post("/v1/bookings", json=booking_body(starts_at=local_start(8)))).json()
        key = {"Idempotency-Key": str(uuid.uuid4())}
        body = {"booking_id": second["id"], "points": 100}
        first = await c.post(url + "/redeem", json=body, headers=key)
        assert first.status_code == 201, first.text
        replay = await c.post(url + "/redeem", json=body, headers=key)
        assert replay.json() == first.json()
        assert first.json()["discount_cents"] == 1000 and first.json()["booking_total_cents"] == 54000
        assert first.json()["account"]["points_balance"] == 20
        again = await c.post(url + "/redeem", json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
        assert again.status_code == 409
        no_key = await c.post(url + "/redeem", json=body)
        assert no_key.status_code in (400, 422)

        # another customer's points are not there for Ana
        assert (await c.get(f"/v1/customers/{bob}/loyalty")).status_code == 404
        assert (await c.get(f"/v1/customers/{bob}/loyalty/history")).status_code == 404

        # cancelling the first booking gives its 200 points back
        assert (await c.post(f"/v1/bookings/{booking['id']}/cancel", json={})).status_code == 200
    while await deliver_due(ctx):
        pass
    assert (await account(clean_db, ana))["points_balance"] == 220

    # staff: reading needs loyalty.read, adjusting needs loyalty.write and a reason, and is audited
    reader = await seed.staff("loyalty.read")
    writer = await seed.staff("loyalty.read", "loyalty.write")
    async with client_of(app) as c:
        assert (await c.get(url, headers=await seed.staff("bookings.read"))).status_code == 403
        assert (await c.get(url, headers=reader)).json()["points_balance"] == 220
        denied = await c.post(url + "/earn", json={"points": 50, "reason": "apology"}, headers=reader)
        assert denied.status_code == 403
        no_reason = await c.post(url + "/earn", json={"points": 50}, headers=writer)
        assert no_reason.status_code == 422 and no_reason.json()["errors"][0]["field"] == "body.reason"
        gift = await c.post(url + "/earn", json={"points": 80, "reason": "late chef"}, headers=writer)
        assert gift.status_code == 201, gift.text
        assert gift.json()["account"]["points_balance"] == 300
        assert gift.json()["transaction"]["description"] == "late chef"
        taken = await c.post(url + "/earn", json={"points": -1000, "reason": "mistake"}, headers=writer)
        assert taken.status_code == 409

        # history, newest first, in pages
        page = (await c.get(url + "/history", params={"limit": 3}, headers=reader)).json()
        rest = (await c.get(url + "/history", params={"cursor": page["next_cursor"]}, headers=reader)).json()
        kinds = [t["transaction_type"] for t in page["items"] + rest["items"]]
        assert kinds == ["adjustment", "unredeem", "redeem", "redeem", "earn"]
        assert [t["balance_after"] for t in page["items"] + rest["items"]] == [300, 220, 20, 120, 320]
        bad = await c.get(url + "/history", params={"cursor": "nope"}, headers=reader)
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.cursor"
    async with clean_db.read() as conn:
        audited = [tuple(r.values()) for r in await conn.fetch_all(sa.select(audit_logs.c.action, audit_logs.c.changes)
                                      .where(audit_logs.c.action == "loyalty.adjust"))]
    assert len(audited) == 1 and audited[0][1]["reason"]["new"] == "late chef"

    # a refund of half the payment takes back half its points
    await refunded(seed, ctx, ana, payment, 16050)
    assert (await account(clean_db, ana))["points_balance"] == 300 - 160

    # a year later what is left has expired
    assert await service.expire_due(ctx, now=datetime.now(timezone.utc) + timedelta(days=400)) >= 1
    assert (await account(clean_db, ana))["points_balance"] == 0
    await verified(clean_db)

    # flag off: the routes are gone
    off = make_app([DepositsPlugin(), LoyaltyPlugin()], flags={FLAG: False})
    async with client_of(off, headers=ana_auth) as c:
        assert (await c.get(url)).status_code == 404


async def test_two_redemptions_race_for_the_same_points(make_app, client_of, seed, clean_db):
    app = make_app([DepositsPlugin(), LoyaltyPlugin()], flags={FLAG: True})
    ctx = app.state.ctx
    ana = await seed.customer()
    await paid(seed, ctx, ana, 30000)
    async with client_of(app, headers=seed.token(ana)) as c:
        results = await asyncio.gather(*[
            c.post("/v1/bookings", json=booking_body(starts_at=local_start(10 + i), loyalty={"points": 200}))
            for i in range(4)])
        assert sorted(r.status_code for r in results) == [201, 409, 409, 409], [r.text for r in results]
        assert (await c.get(f"/v1/customers/{ana}/loyalty")).json()["points_balance"] == 100

        # the redeem route: two bookings, each asking for the last 100 points at once
        plain = [(await c.post("/v1/bookings", json=booking_body(starts_at=local_start(20 + i)))).json()["id"]
                 for i in range(2)]
        raced = await asyncio.gather(*[
            c.post(f"/v1/customers/{ana}/loyalty/redeem", json={"booking_id": b, "points": 100},
                   headers={"Idempotency-Key": str(uuid.uuid4())}) for b in plain])
        assert sorted(r.status_code for r in raced) == [201, 409], [r.text for r in raced]
    async with clean_db.read() as conn:
        totals = [tuple(r.values()) for r in await conn.fetch_all(sa.text("SELECT id, total_cents FROM bookings"))]
    # exactly one booking got each discount: the losers were rolled back whole
    assert sorted(t for _, t in totals) == [53000, 54000, 55000]
    assert (await account(clean_db, ana))["points_balance"] == 0
    await verified(clean_db)


async def test_refund_reverses_points_never_below_zero(make_app, seed, clean_db):
    app = make_app([DepositsPlugin(), LoyaltyPlugin()], flags={FLAG: True})
    ctx = app.state.ctx
    ana = await seed.customer()
    first = await paid(seed, ctx, ana, 50000)
    second = await paid(seed, ctx, ana, 20000)
    # two partial refunds of the first payment: 30% then 70%, rounding never gives a point extra
    await refunded(seed, ctx, ana, first, 15001, refund_id="re_1")
    await refunded(seed, ctx, ana, first, 15001, refund_id="re_1")  # the same refund delivered twice
    assert (await account(clean_db, ana))["points_balance"] == 700 - 150
    await refunded(seed, ctx, ana, first, 34999, refund_id="re_2")
    assert (await account(clean_db, ana))["points_balance"] == 200
    # the refund of the first payment took its own lot, not the second payment's
    lots = {r["payment_id"]: r["remaining"] for r in await ledger_of(clean_db, ana) if r["transaction_type"] == "earn"}
    assert lots == {first: 0, second: 200}

    # the second payment's points are spent, then it is refunded: the balance stops at zero, the rest is debt
    async with clean_db.transaction() as conn:
        await service.adjust(conn, ctx, ana, -150, "spent at the counter", actor="staff")
    await refunded(seed, ctx, ana, second, 20000, refund_id="re_3")
    acct = await account(clean_db, ana)
    assert (acct["points_balance"], acct["points_debt"], acct["lifetime_points"]) == (0, 150, 0)
    # the next points earned pay the debt first
    await paid(seed, ctx, ana, 20000)
    acct = await account(clean_db, ana)
    assert (acct["points_balance"], acct["points_debt"], acct["lifetime_points"]) == (50, 0, 200)
    # a refund of a payment that earned nothing, or was never seen, changes nothing
    await refunded(seed, ctx, ana, "pi_unknown", 1000)
    assert (await account(clean_db, ana))["points_balance"] == 50
    await verified(clean_db)


async def test_points_expire_fifo_after_twelve_months(make_app, seed, clean_db):
    app = make_app([DepositsPlugin(), LoyaltyPlugin()], flags={FLAG: True})
    ctx = app.state.ctx
    ana = await seed.customer()
    async with clean_db.transaction() as conn:
        await service.earn_for_payment(conn, ctx, ana, "pi_jan", 10000, now=T0)  # 100 points, January
        await service.earn_for_payment(conn, ctx, ana, "pi_mar", 20000, now=T0 + timedelta(days=60))  # 200, March
    # spending 150 takes January's 100 first, then 50 of March's
    async with clean_db.transaction() as conn:
        await service.adjust(conn, ctx, ana, -150, "spent", actor="staff", now=T0 + timedelta(days=90))
    lots = {r["payment_id"]: r["remaining"] for r in await ledger_of(clean_db, ana) if r["transaction_type"] == "earn"}
    assert lots == {"pi_jan": 0, "pi_mar": 150}

    assert await service.expire_due(ctx, now=T0 + timedelta(days=364)) == 0
    # January's lot expires on 15 January next year but is already spent: nothing to take
    assert await service.expire_due(ctx, now=datetime(2027, 1, 15, 12, 1, tzinfo=timezone.utc)) == 0
    assert (await account(clean_db, ana))["points_balance"] == 150
    # March's lot expires twelve months after it was earned
    assert await service.expire_due(ctx, now=T0 + timedelta(days=60) + timedelta(days=364)) == 0
    assert await service.expire_due(ctx, now=datetime(2027, 3, 16, 12, 0, tzinfo=timezone.utc)) == 1
    assert await service.expire_due(ctx, now=datetime(2027, 3, 16, 12, 0, tzinfo=timezone.utc)) == 0
    rows = await ledger_of(clean_db, ana)
    assert (rows[-1]["transaction_type"], rows[-1]["points"], rows[-1]["balance_after"]) == ("expire", -150, 0)
    assert (await account(clean_db, ana))["points_balance"] == 0

    # a request expires its own due lots before it reads the balance (no waiting for the poller)
    async with clean_db.transaction() as conn:
        await service.earn_for_payment(conn, ctx, ana, "pi_2027", 30000, now=datetime(2027, 4, 1, tzinfo=timezone.utc))
    async with clean_db.transaction() as conn:
        late = datetime(2028, 4, 2, tzinfo=timezone.utc)
        book = await service.Book.open(conn, ctx, ana, late)
        assert book.balance == 0
        await book.save()

    # the worker's dispatch loop runs the expiry poller
    bob = await seed.customer()
    async with clean_db.transaction() as conn:
        await service.earn_for_payment(conn, ctx, bob, "pi_old", 10000,
                                       now=datetime.now(timezone.utc) - timedelta(days=370))
    assert await dispatch_once(ctx) >= 1
    assert (await account(clean_db, bob))["points_balance"] == 0
    await verified(clean_db)


async def test_points_given_back_keep_their_expiry(make_app, seed, clean_db):
    app = make_app([DepositsPlugin(), LoyaltyPlugin()], flags={FLAG: True})
    ctx = app.state.ctx
    ana = await seed.customer()
    booking = await seed.booking(ana, T0 + timedelta(days=30))
    async with clean_db.transaction() as conn:
        await service.earn_for_payment(conn, ctx, ana, "pi_1", 30000, now=T0)
        await service.redeem_for_booking(conn, ctx, ana, booking, 300, now=T0 + timedelta(days=1))
    # cancelled after the points' year is over: they come back and expire at once
    async with clean_db.transaction() as conn:
        await service.give_back_for_booking(conn, ctx, booking, now=T0 + timedelta(days=400))
        assert await service.give_back_for_booking(conn, ctx, booking, now=T0 + timedelta(days=400)) is None
    kinds = [(r["transaction_type"], r["points"]) for r in await ledger_of(clean_db, ana)]
    assert kinds == [("earn", 300), ("redeem", -300), ("unredeem", 300), ("expire", -300)]
    await verified(clean_db)
    # an operation that ends early (a refund of an unknown payment) still keeps what it expired
    async with clean_db.transaction() as conn:
        await service.earn_for_payment(conn, ctx, ana, "pi_2", 10000, now=T0 + timedelta(days=401))
    async with clean_db.transaction() as conn:
        assert await service.reverse_for_refund(conn, ctx, ana, "pi_unknown", 100, "re_x",
                                                now=T0 + timedelta(days=800)) is None
    assert (await account(clean_db, ana))["points_balance"] == 0
    await verified(clean_db)


async def test_tiers_raise_the_earning_multiplier(make_app, seed, clean_db):
    plugin = LoyaltyPlugin(silver_points=500, gold_points=1000, platinum_points=2000)
    app = make_app([DepositsPlugin(), plugin], flags={FLAG: True})
    ctx = app.state.ctx
    ana = await seed.customer()
    steps = []
    for n, cents in enumerate([50000, 40000, 40000, 40000, 10000]):
        async with clean_db.transaction() as conn:
            row = await service.earn_for_payment(conn, ctx, ana, f"pi_{n}", cents, now=T0)
        acct = await account(clean_db, ana)
        steps.append((row["points"], acct["lifetime_points"], acct["tier"]))
    # bronze x1 -> silver x1.25 -> gold x1.5 -> platinum x2
    assert steps == [(500, 500, "silver"), (500, 1000, "gold"), (600, 1600, "gold"), (600, 2200, "platinum"),
                     (200, 2400, "platinum")]
    async with clean_db.read() as conn:
        got = await service.summary(conn, ctx, ana)
    assert (got["earn_multiplier_percent"], got["next_tier"], got["points_to_next_tier"]) == (200, None, None)
    # a refund lowers the lifetime points, and the tier with them
    await refunded(seed, ctx, ana, "pi_4", 10000)
    await refunded(seed, ctx, ana, "pi_3", 40000)
    acct = await account(clean_db, ana)
    assert (acct["lifetime_points"], acct["tier"]) == (1600, "gold")
    await verified(clean_db)


async def verify_cli(db_url, settings) -> tuple[int, str]:
    env = {**os.environ, "DATABASE_URL": db_url, "MYHIBACHI_HOME": str(settings.home_dir),
           "MYHIBACHI_SECRET_KEY": settings.secret_key}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "myhibachi.core.cli", "loyalty", "verify", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode() + err.decode()


async def test_verify_finds_a_balance_that_disagrees(make_app, seed, clean_db, db_url, settings):
    app = make_app([DepositsPlugin(), LoyaltyPlugin()], flags={FLAG: True})
    ana = await seed.customer()
    await paid(seed, app.state.ctx, ana, 10000)
    await verified(clean_db)
    code, out = await verify_cli(db_url, settings)
    assert code == 0 and "ok: 1 accounts agree" in out, out
    async with clean_db.transaction() as conn:
        await conn.run(sa.update(loyalty_accounts).values(points_balance=101))
    async with clean_db.read() as conn:
        result = await service.verify(conn)
    assert [(m["points_balance"], m["ledger"], m["open_lots"]) for m in result["mismatches"]] == [(101, 100, 100)]
    code, out = await verify_cli(db_url, settings)
    assert code == 1 and "mismatch" in out and str(ana) in out, out


async def test_bad_input_is_named_and_changes_nothing(make_app, client_of, seed, clean_db):
    app = make_app([DepositsPlugin(), LoyaltyPlugin()], flags={FLAG: True})
    ctx = app.state.ctx
    ana = await seed.customer()
    bob = await seed.customer()
    await paid(seed, ctx, ana, 50000)
    # events naming no customer of ours earn nothing and do not fail delivery
    await paid(seed, ctx, uuid.uuid4(), 50000)
    await seed.publish(ctx, "payment.succeeded", {"payment_id": "pi_x", "customer_id": "not-a-uuid",
                                                  "amount_cents": 100})
    bobs = await seed.booking(bob, datetime.now(timezone.utc) + timedelta(days=9), status="pending")
    url = f"/v1/customers/{ana}/loyalty"
    writer = await seed.staff("loyalty.read", "loyalty.write")
    async with client_of(app, headers=seed.token(ana)) as c:
        key = lambda: {"Idempotency-Key": str(uuid.uuid4())}  # noqa: E731
        odd = await c.post(url + "/redeem", json={"booking_id": str(bobs), "points": 150}, headers=key())
        assert odd.status_code == 422 and odd.json()["errors"][0]["field"] == "body.points"
        theirs = await c.post(url + "/redeem", json={"booking_id": str(bobs), "points": 100}, headers=key())
        assert theirs.status_code == 404
        small = await c.post("/v1/bookings", json=booking_body(loyalty={"points": "lots"}))
        assert small.status_code == 422
        assert (await c.get(url + "/history", params={"limit": 0})).status_code == 422
        assert (await c.post(url + "/earn", json={"points": 10, "reason": "me"})).status_code == 403
    async with client_of(app, headers=writer) as c:
        assert (await c.get(f"/v1/customers/{uuid.uuid4()}/loyalty")).status_code == 404
        zero = await c.post(url + "/earn", json={"points": 0, "reason": "nothing"})
        assert zero.status_code == 422 and zero.json()["errors"][0]["field"] == "body.points"
        blank = await c.post(url + "/earn", json={"points": 5, "reason": "   "})
        assert blank.status_code == 422 and blank.json()["errors"][0]["field"] == "body.reason"
    assert [(r["transaction_type"], r["points"]) for r in await ledger_of(clean_db, ana)] == [("earn", 500)]
    async with clean_db.read() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(loyalty_accounts)) == 1
    await verified(clean_db)


async def test_the_customer_view_carries_the_points(make_app, client_of, seed, clean_db, monkeypatch):
    """``loyalty`` on the customer view: typed in OpenAPI, the balance and tier for the
    customer and for staff with ``loyalty.read``, null for staff without it and when the
    flag is off. It costs no statement: ``/v1/customers/me`` is one statement, and the admin
    list as many as without the plugin (broken on purpose by reading the accounts with a
    query of their own: one more each)."""
    from myhibachi.core import db

    app = make_app([DepositsPlugin(), LoyaltyPlugin()], flags={FLAG: True})
    core = make_app([DepositsPlugin()])
    ana, ben = await seed.customer(name="Ana"), await seed.customer(name="Ben")
    reader = await seed.staff("customers.read", "loyalty.read", "loyalty.write")
    plain = await seed.staff("customers.read")
    statements = []
    compile_ = db._compile

    from myhibachi.core.auth import _family_revoked

    def counted(stmt, params):
        if stmt is not _family_revoked():  # the session check: the shared cache's, once the app runs
            statements.append(str(stmt))
        return compile_(stmt, params)

    async def run(client, path, headers):
        statements.clear()
        monkeypatch.setattr(db, "_compile", counted)
        try:
            return (await client.get(path, headers=headers)).json(), len(statements)
        finally:
            monkeypatch.undo()

    async with client_of(core) as c:
        await c.get("/v1/admin/customers", headers=reader)  # a key's first use also records it
        _, core_list = await run(c, "/v1/admin/customers", reader)
    async with client_of(app) as c:
        schemas = (await c.get("/openapi.json")).json()["components"]["schemas"]
        earned = await c.post(f"/v1/customers/{ana}/loyalty/earn", json={"points": 1200, "reason": "welcome"},
                              headers=reader)
        assert earned.status_code == 201, earned.text
        me, me_statements = await run(c, "/v1/customers/me", seed.token(ana))
        (listed, list_statements) = await run(c, "/v1/admin/customers", reader)
        hidden = (await c.get(f"/v1/admin/customers/{ana}", headers=plain)).json()
    ref = next(s["$ref"] for s in schemas["Customer"]["properties"]["loyalty"]["anyOf"] if "$ref" in s)
    points = schemas[ref.rsplit("/", 1)[1]]
    assert points["properties"]["points_balance"]["type"] == "integer" and "silver" in points["properties"]["tier"]["enum"]
    assert me["loyalty"] == {"points_balance": 1200, "tier": "silver"}
    assert {i["name"]: i["loyalty"] for i in listed["items"]} == {"Ana": {"points_balance": 1200, "tier": "silver"},
                                                                  "Ben": {"points_balance": 0, "tier": "bronze"}}
    assert me_statements == 1 and list_statements == core_list
    assert hidden["name"] == "Ana" and hidden["loyalty"] is None

    off = make_app([DepositsPlugin(), LoyaltyPlugin()], flags={FLAG: False})
    async with client_of(off, headers=seed.token(ben)) as c:
        me = (await c.get("/v1/customers/me")).json()
    assert me["name"] == "Ben" and me["loyalty"] is None


async def test_a_quote_is_no_oracle_for_another_customers_balance(make_app, client_of, seed, clean_db):
    """Only the customer, or staff who may book for them, quote against a named customer's
    points; nobody is told the balance: an anonymous caller, another customer and staff with
    only bookings.read naming Ana get a 403 saying nothing of her points, Ana and a booker a
    422 without the number, and nothing is stored or published. Broken on purpose by quoting
    for ``data.customer_id`` whoever asks (the anonymous caller read "only 320 ... available"):
    red."""
    from myhibachi.core.models import bookings, outbox_events

    app = make_app([DepositsPlugin(), LoyaltyPlugin()], flags={FLAG: True})
    ana, bob = await seed.customer(), await seed.customer()
    await paid(seed, app.state.ctx, ana, 32099)
    ask = booking_body(customer_id=str(ana), loyalty={"points": 1_000_000})
    async with clean_db.read() as conn:
        events_before = await conn.scalar(sa.select(sa.func.count()).select_from(outbox_events))
    async with client_of(app) as c:
        answers = {
            "anonymous": await c.post("/v1/bookings/quote", json=ask),
            "bob": await c.post("/v1/bookings/quote", json=ask, headers=seed.token(bob)),
            "reader": await c.post("/v1/bookings/quote", json=ask, headers=await seed.staff("bookings.read")),
            "ana": await c.post("/v1/bookings/quote", json=ask, headers=seed.token(ana)),
            "booker": await c.post("/v1/bookings/quote", json=ask, headers=await seed.staff("bookings.write")),
            "unnamed": await c.post("/v1/bookings/quote", json=booking_body(loyalty={"points": 100})),
        }
    for who in ("anonymous", "bob", "reader"):
        assert answers[who].status_code == 403, (who, answers[who].text)
        assert answers[who].json()["type"].endswith("/forbidden")
    for who in ("ana", "booker"):
        assert answers[who].status_code == 422, (who, answers[who].text)
        assert answers[who].json()["errors"][0]["field"] == "body.loyalty.points"
    assert answers["unnamed"].status_code == 422 and "customer" in answers["unnamed"].json()["detail"]
    for who, answer in answers.items():
        assert "320" not in answer.text, who
    async with clean_db.read() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(bookings)) == 0
        assert await conn.scalar(sa.select(sa.func.count()).select_from(outbox_events)) == events_before
