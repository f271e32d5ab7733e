"""The reports agree with the ledger to the cent, on any mix of rows, across DST changes."""
from __future__ import annotations

import random
import uuid
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from myhibachi.plugins.payment_history import service
from myhibachi.plugins.payment_history.models import payment_ledger
from tests.plugins.payment_history.test_payment_history import generated, history_app

TZ = "America/Los_Angeles"
# Los Angeles falls back on 2026-11-01 (a 25-hour local day) and springs forward on 2026-03-08 (23 hours).
FALL_BACK = datetime(2026, 11, 1, 7, tzinfo=timezone.utc)


def payment_event(kind_amount: tuple[str, int], at: datetime, currency: str = "USD", fee: int = 0) -> dict:
    return {"id": str(uuid.uuid4()), "created_at": at,
            "payload": {"payment_id": str(uuid.uuid4()), "booking_id": str(uuid.uuid4()),
                        "customer_id": str(uuid.uuid4()), "amount_cents": kind_amount[1], "currency": currency,
                        "fee_cents": fee}}


async def plant(ctx, rows: list[tuple]) -> None:
    """Ledger rows as the payment events' handlers write them: (kind, amount, at, currency[, fee])."""
    async with ctx.db.transaction() as conn:
        await conn.run(sa.delete(payment_ledger))
        for kind, amount, at, currency, *fee in rows:
            handler = service.on_charge if kind == "charge" else service.on_refund
            await handler(conn, payment_event((kind, amount), at, currency, *fee), ctx)


async def test_daily_report_across_fall_back(make_app, client_of, seed, clean_db, localstripe_url):
    app = history_app(make_app, localstripe_url)
    at = [FALL_BACK + timedelta(minutes=30),            # 00:30 PDT, Nov 1
          FALL_BACK + timedelta(hours=24, minutes=30),  # 23:30 PST, Nov 1: the 25th hour of the day
          FALL_BACK + timedelta(hours=25, minutes=30)]  # 00:30 PST, Nov 2
    await plant(app.state.ctx, [("charge", 100, at[0], "USD"), ("charge", 200, at[1], "USD"),
                                ("charge", 400, at[2], "USD")])
    async with client_of(app, headers=await seed.staff("payments.read")) as c:
        nov1 = (await c.get("/v1/admin/payments/reports/daily", params={"day": "2026-11-01", "time_zone": TZ})).json()
        assert [(r["gross_cents"], r["count"]) for r in nov1["rows"]] == [(300, 2)]
        nov2 = (await c.get("/v1/admin/payments/reports/daily", params={"day": "2026-11-02", "time_zone": TZ})).json()
        assert [(r["gross_cents"], r["count"]) for r in nov2["rows"]] == [(400, 1)]
        utc = (await c.get("/v1/admin/payments/reports/daily", params={"day": "2026-11-02", "time_zone": "UTC"})).json()
        assert [r["gross_cents"] for r in utc["rows"]] == [600]


async def test_reports_agree_with_the_ledger(make_app, client_of, seed, clean_db, localstripe_url):
    app = history_app(make_app, localstripe_url)
    rng = random.Random(24)
    spring = datetime(2026, 3, 8, 10, tzinfo=timezone.utc)
    async with client_of(app, headers=await seed.staff("payments.read")) as c:
        for _ in range(12):
            centre = rng.choice([spring, FALL_BACK])
            rows = [(rng.choice(["charge", "charge", "refund"]), rng.randint(1, 10_000_000),
                     centre + timedelta(seconds=rng.randint(-3 * 86400, 3 * 86400)), rng.choice(["USD", "USD", "CAD"]),
                     rng.choice([0, rng.randint(1, 400_000)]))
                    for _ in range(rng.randint(0, 40))]
            await plant(app.state.ctx, rows)
            async with app.state.ctx.db.read() as conn:
                stored = await conn.fetch_all(sa.select(payment_ledger))
            zone = ZoneInfo(TZ)
            want_day: dict = defaultdict(lambda: [0, 0, 0, 0])
            want_month: dict = defaultdict(lambda: [0, 0, 0, 0])
            for r in stored:
                local = r["occurred_at"].astimezone(zone).date()
                for want, period in ((want_day, local.isoformat()), (want_month, local.strftime("%Y-%m"))):
                    cell = want[(period, r["currency"])]
                    cell[("charge", "refund", "fee").index(r["kind"])] += r["amount_cents"]
                    cell[3] += r["kind"] == "charge"
            first = (centre - timedelta(days=4)).date()
            report = await generated(c, app.state.ctx, {
                "first_day": first.isoformat(), "last_day": (first + timedelta(days=8)).isoformat(), "group_by": "day",
                "time_zone": TZ})
            got = {(r["period"], r["currency"]): [r["gross_cents"], r["refunds_cents"], r["fees_cents"], r["count"]]
                   for r in report["rows"]}
            assert got == {k: v for k, v in want_day.items() if v != [0, 0, 0, 0]}
            for r in report["rows"]:
                assert r["net_cents"] == r["gross_cents"] - r["refunds_cents"] - r["fees_cents"]
            month = centre.astimezone(zone).strftime("%Y-%m")
            monthly = (await c.get("/v1/admin/payments/reports/monthly", params={"month": month, "time_zone": TZ})).json()
            assert {(r["period"], r["currency"]): [r["gross_cents"], r["refunds_cents"], r["fees_cents"], r["count"]]
                    for r in monthly["rows"]} == {k: v for k, v in want_month.items() if k[0] == month}
            one_day = (centre.astimezone(zone)).date()
            daily = (await c.get("/v1/admin/payments/reports/daily",
                                 params={"day": one_day.isoformat(), "time_zone": TZ})).json()
            assert {(r["period"], r["currency"]): [r["gross_cents"], r["refunds_cents"], r["fees_cents"], r["count"]]
                    for r in daily["rows"]} == {k: v for k, v in want_day.items() if k[0] == one_day.isoformat()}
