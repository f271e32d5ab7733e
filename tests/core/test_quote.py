"""Quotes: base lines from settings plus plugin lines; create stores them as history."""
from __future__ import annotations

import sqlalchemy as sa

from myhibachi.core.models import bookings

from .booking_plugin import FLAG, BookingHooks
from .conftest import booking_body, local_start


def codes(lines: list[dict]) -> list[tuple[str, int]]:
    return [(line["code"], line["amount_cents"]) for line in lines]


async def test_quote_lines_from_settings_and_plugins(make_app, client_of, clean_db):
    app = make_app([BookingHooks()], flags={FLAG: True}, price_adult_cents=5000, price_child_cents=2500,
                   minimum_order_cents=40000)
    async with client_of(app) as c:
        small = await c.post("/v1/bookings/quote", json={"adults": 4, "children": 2})
        big = await c.post("/v1/bookings/quote", json={"adults": 20, "children": 4, "booking_hooks": {"promo": "TENOFF"}})
    assert small.status_code == 200, small.text
    assert codes(small.json()["lines"]) == [("base.adults", 20000), ("base.children", 5000), ("base.minimum", 15000)]
    assert small.json()["total_cents"] == 40000 and small.json()["currency"] == "USD"
    q = big.json()
    assert codes(q["lines"]) == [("base.adults", 100000), ("base.children", 10000), ("promo.tenoff", -11000)]
    assert q["total_cents"] == 99000 == sum(line["amount_cents"] for line in q["lines"])
    async with clean_db.read() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(bookings)) == 0


async def test_create_stores_the_quoted_lines_and_later_prices_do_not_rewrite_them(
        make_app, client_of, add_customer):
    _, auth = await add_customer()
    body = booking_body(adults=20, children=3, booking_hooks={"promo": "TENOFF"})
    app = make_app([BookingHooks()], flags={FLAG: True})
    async with client_of(app) as c:
        quoted = (await c.post("/v1/bookings/quote", json=body, headers=auth)).json()
        created = (await c.post("/v1/bookings", json=body, headers=auth)).json()
    assert created["price_lines"] == quoted["lines"] and created["total_cents"] == quoted["total_cents"]
    assert created["total_cents"] == sum(line["amount_cents"] for line in created["price_lines"])
    assert ("promo.tenoff", -12900) in codes(created["price_lines"])

    repriced = make_app([BookingHooks()], flags={FLAG: True}, price_adult_cents=9900)
    async with client_of(repriced) as c:
        later = (await c.get(f"/v1/bookings/{created['id']}", headers=auth)).json()
        new_quote = (await c.post("/v1/bookings/quote", json=body, headers=auth)).json()
        noted = (await c.patch(f"/v1/bookings/{created['id']}", json={"notes": "gate code 1234"},
                               headers=auth)).json()
        regrouped = (await c.patch(f"/v1/bookings/{created['id']}", json={"adults": 21, "booking_hooks": {}},
                                   headers=auth)).json()
    assert later["price_lines"] == created["price_lines"] and later["total_cents"] == created["total_cents"]
    assert new_quote["total_cents"] > created["total_cents"]
    assert noted["total_cents"] == created["total_cents"] and noted["price_lines"] == created["price_lines"]
    assert regrouped["total_cents"] == 21 * 9900 + 3 * 3000 == sum(
        line["amount_cents"] for line in regrouped["price_lines"])


async def test_quote_never_below_zero(make_app, client_of):
    app = make_app([BookingHooks()], flags={FLAG: True})
    async with client_of(app) as c:
        q = (await c.post("/v1/bookings/quote", json={"adults": 10, "booking_hooks": {"promo": "FREE"}})).json()
    assert q["total_cents"] == 0
    assert q["lines"][-1]["code"] == "adjustment.floor"
    assert sum(line["amount_cents"] for line in q["lines"]) == 0


async def test_quote_checks_the_same_rules(make_app, client_of):
    app = make_app([BookingHooks()], flags={FLAG: True})
    async with client_of(app) as c:
        too_small = await c.post("/v1/bookings/quote", json={"adults": 1})
        off_grid = await c.post("/v1/bookings/quote", json={"adults": 10, "starts_at": local_start(minute=10),
                                                            "time_zone": "America/New_York"})
        refused = await c.post("/v1/bookings/quote", json={"adults": 10, "booking_hooks": {"refuse": "sold out"}})
        negative = await c.post("/v1/bookings/quote", json={"adults": -3})
    assert too_small.status_code == 422 and too_small.json()["errors"][0]["field"] == "body.adults"
    assert off_grid.status_code == 422 and off_grid.json()["errors"][0]["field"] == "body.starts_at"
    assert refused.status_code == 422 and "sold out" in refused.json()["detail"]
    assert negative.status_code == 422 and negative.json()["errors"][0]["field"] == "body.adults"


async def test_quote_skips_plugin_lines_when_flag_off(make_app, client_of):
    app = make_app([BookingHooks()], flags={FLAG: False})
    async with client_of(app) as c:
        q = (await c.post("/v1/bookings/quote", json={"adults": 20, "booking_hooks": {"promo": "TENOFF"}})).json()
    assert codes(q["lines"]) == [("base.adults", 120000)]
