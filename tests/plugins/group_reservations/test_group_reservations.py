"""Group reservations over HTTP: guests at chef stations (one core booking each, within the
location's capacity and stations), the group menu priced through price_booking, split
billing whose shares sum to the total, and the menu deadline."""
from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from myhibachi.core import tables
from myhibachi.core.db import utcnow
from myhibachi.core.models import outbox_events
from myhibachi.plugins.deposits import DepositsPlugin
from myhibachi.plugins.group_reservations import GroupReservationsPlugin
from myhibachi.plugins.group_reservations.models import groups, guests, stations
from myhibachi.plugins.locations import LocationsPlugin

NY = ZoneInfo("America/New_York")
FLAGS = {"FEATURE_FLAG_GROUP_RESERVATIONS": True, "FEATURE_FLAG_MULTI_LOCATION": True}
MENU = [{"code": "chicken", "label": "Chicken"}, {"code": "filet", "label": "Filet mignon", "surcharge_cents": 1500}]


def app_of(make_app, **settings):
    return make_app([LocationsPlugin(), DepositsPlugin(), GroupReservationsPlugin(**settings)], flags=FLAGS)


def guest(name, table=1, payer="Ana", menu="chicken", **kw):
    return {"name": name, "table": table, "payer": payer, "menu_choice": menu, **kw}


def body(start, guest_list, **kw):
    return {"starts_at": start.isoformat(), "time_zone": "America/New_York", "address": "1 Main St",
            "zip_code": "12345", "menu": MENU, "guests": guest_list,
            "billing": {"split": "by_guest", "payers": [{"name": "Ana"}, {"name": "Bo"}]}, **kw}


async def rows(db, query):
    async with db.read() as conn:
        return [dict(r) for r in await conn.fetch_all(query)]


async def location(c, staff, capacity=6, stations=2):
    r = await c.post("/v1/locations", headers=await staff(["locations.write"]), json={
        "name": "Springfield", "address": "1 Grill Ave", "city": "Springfield", "state": "NY", "zip_code": "12345",
        "time_zone": "America/New_York", "capacity": capacity, "events_per_slot": stations,
        "service_area": {"zip_codes": ["12345"]}})
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def test_booking_group_reservations(make_app, client_of, customer, staff, clean_db, rotate_pii):
    """Broken on purpose: without the menu lines of price_booking the stations' totals lack
    the filet surcharges (red); with _split rounding down only, the shares miss the total by
    a cent (red); without the station check in validate_booking a plain booking claims a
    group table, and a station's party changes by PATCH (red); without the by-amount check
    the wrong amounts are stored (red); without the deadline check the late change is taken
    (red). After a PII key rotation the group's guests (names, contacts, dietary notes,
    allergens) read back as planted under the new key only (red without the plugin's
    rotate_keys, or with the guests re-sealed under other associated data)."""
    app = app_of(make_app)
    ana = await customer()
    start = datetime.combine(utcnow().astimezone(NY).date() + timedelta(days=10), time(18))
    seven = [guest("Ana", menu="filet", allergens=["shellfish"], contact="ana@example.com", dietary="no pork"),
             guest("Bo", payer="Bo", contact="(415) 555-0100"), guest("Cy", child=True, dietary="vegetarian"),
             guest("Di", table=2, payer="Bo", menu="filet"), guest("Ed", table=2), guest("Flo", table=2, child=True),
             guest("Gus", table=2, payer="Bo")]
    async with client_of(app, headers=ana.headers) as c:
        await location(c, staff)
        bad_menu = await c.post("/v1/bookings/groups", json=body(start, [guest("X", menu="lobster"), guest("Y")]))
        bad_payer = await c.post("/v1/bookings/groups", json=body(start, [guest("X", payer="Zed"), guest("Y")]))
        too_big = await c.post("/v1/bookings/groups", json=body(start, [guest(f"G{i}") for i in range(7)]))
        made = await c.post("/v1/bookings/groups", json=body(start, seven))
        assert made.status_code == 201, made.text
        g = made.json()
        # both stations are taken: a third group table (or anyone) finds the slot full
        full = await c.post("/v1/bookings", json={"starts_at": start.isoformat(), "time_zone": "America/New_York",
                                                  "adults": 4, "address": "2 Side St", "zip_code": "12345"})
        got = await c.get(f"/v1/bookings/groups/{g['id']}")
        # a station is booked and changed only through its group
        forged = await c.post("/v1/bookings", json={
            "starts_at": (start + timedelta(days=1)).isoformat(), "time_zone": "America/New_York", "adults": 2,
            "address": "2 Side St", "zip_code": "12345", "group_reservations": {"group_id": g["id"], "table_no": 3}})
        moved = await c.patch(f"/v1/bookings/{g['tables'][0]['booking_id']}", json={"adults": 5})
    assert bad_menu.status_code == 422 and bad_menu.json()["errors"][0]["field"] == "body.guests.0.menu_choice"
    assert bad_payer.status_code == 422 and bad_payer.json()["errors"][0]["field"] == "body.guests.0.payer"
    assert too_big.status_code == 422, too_big.text  # 7 guests at one station of 6
    assert too_big.json()["errors"][0]["field"] == "body.guests" and too_big.json()["table_no"] == 1
    assert len(await rows(clean_db, sa.select(groups))) == 1  # the refused groups left nothing
    assert full.status_code == 409
    assert forged.status_code == 422 and forged.json()["errors"][0]["field"] == "body.group_reservations"
    assert moved.status_code == 409 and f"/v1/bookings/groups/{g['id']}/guests" in moved.json()["detail"]
    assert [(t["table_no"], t["party_size"]) for t in g["tables"]] == [(1, 3), (2, 4)]
    stored = {r["id"]: r for r in await rows(clean_db, sa.select(tables.bookings))}
    assert {str(k) for k in stored} == {t["booking_id"] for t in g["tables"]}
    one, two = (stored[uuid.UUID(t["booking_id"])] for t in g["tables"])
    assert (one["adults"], one["children"], two["adults"], two["children"]) == (2, 1, 3, 1)
    assert [ln["amount_cents"] for ln in one["price_lines"] if ln["code"].startswith("group.menu")] == [1500]
    assert g["total_cents"] == one["total_cents"] + two["total_cents"]
    assert sum(s["amount_cents"] for s in g["shares"]) == g["total_cents"]
    assert got.json()["guests"][0]["name"] == "Ana" and got.json()["guests"][0]["allergens"] == ["shellfish"]
    sealed = await rows(clean_db, sa.select(guests.c.name_enc))
    assert "Ana" not in {s["name_enc"] for s in sealed}  # names sealed at rest
    created = await rows(clean_db, sa.select(outbox_events.c.payload).where(outbox_events.c.name == "booking.created"))
    assert {p["payload"]["booking_id"] for p in created} == {t["booking_id"] for t in g["tables"]}

    # a guest leaves table 2: its booking is re-sized and re-priced; by amount must add up
    async with client_of(app, headers=ana.headers) as c:
        fewer = await c.put(f"/v1/bookings/groups/{g['id']}/guests", json={"guests": seven[:6]})
        wrong = await c.put(f"/v1/bookings/groups/{g['id']}/guests", json={
            "guests": seven, "billing": {"split": "by_amount", "payers": [{"name": "Ana", "amount_cents": 1},
                                                                          {"name": "Bo", "amount_cents": 2}]}})
        # the location has two chef stations: a third table is refused
        third = await c.put(f"/v1/bookings/groups/{g['id']}/guests", json={
            "guests": [*seven[:5], guest("Hal", 3), guest("Ian", 3)]})
        total = fewer.json()["total_cents"]
        paid = await c.put(f"/v1/bookings/groups/{g['id']}/guests", json={
            "guests": seven[:6], "billing": {"split": "by_amount", "payers": [
                {"name": "Ana", "amount_cents": 100}, {"name": "Bo", "amount_cents": total - 100}]}})
    assert fewer.status_code == 200, fewer.text
    assert [(t["table_no"], t["party_size"]) for t in fewer.json()["tables"]] == [(1, 3), (2, 3)]
    assert sum(s["amount_cents"] for s in fewer.json()["shares"]) == total
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "body.billing.payers"
    assert third.status_code == 409 and third.json()["table_no"] == 3, third.text
    assert paid.status_code == 200 and [s["amount_cents"] for s in paid.json()["shares"]] == [100, total - 100]
    assert len(await rows(clean_db, sa.select(guests))) == 6  # the refused changes wrote nothing
    assert len(await rows(clean_db, sa.select(stations))) == 2
    assert {r["party_size"] for r in await rows(clean_db, sa.select(tables.bookings))} == {3}

    late = app_of(make_app, menu_deadline_hours=24 * 30)  # the deadline has passed for this app
    async with client_of(late, headers=ana.headers) as c:
        closed = await c.put(f"/v1/bookings/groups/{g['id']}/guests", json={"guests": seven})
    assert closed.status_code == 409 and "menu deadline" in closed.json()["detail"]
    assert len(await rows(clean_db, sa.select(stations))) == 2

    again, counts = await rotate_pii(app)
    assert counts["plugin row(s)"] == 1  # the one group (its six guests with it)
    async with client_of(again, headers=ana.headers) as c:
        read = await c.get(f"/v1/bookings/groups/{g['id']}")
    assert read.status_code == 200, read.text
    assert [(x["name"], x["contact"], x["dietary"], x["allergens"]) for x in read.json()["guests"]] == [
        (x["name"], x.get("contact"), x.get("dietary"), x.get("allergens", [])) for x in seven[:6]]


async def test_staff_book_a_group_for_a_customer(make_app, client_of, customer, staff, clean_db):
    app = app_of(make_app)
    ana = await customer()
    start = datetime.combine(utcnow().astimezone(NY).date() + timedelta(days=10), time(18))
    async with client_of(app, headers=await staff(["groups.write", "groups.read", "bookings.write"])) as c:
        at = await location(c, staff)
        nobody = await c.post("/v1/bookings/groups", json=body(start, [guest("Ana"), guest("Bo", payer="Bo")]))
        made = await c.post("/v1/bookings/groups", json=body(start, [guest("Ana"), guest("Bo", payer="Bo")],
                                                             customer_id=str(ana.id), location_id=at))
    async with client_of(app, headers=await staff(["groups.read"])) as c:
        denied = await c.post("/v1/bookings/groups", json=body(start, [guest("Ana")], customer_id=str(ana.id)))
    assert nobody.status_code == 422 and nobody.json()["errors"][0]["field"] == "body.customer_id"
    assert made.status_code == 201, made.text
    assert denied.status_code == 403
    booked = await rows(clean_db, sa.select(tables.bookings.c.customer_id, tables.bookings.c.party_size,
                                            tables.bookings.c.pools))
    assert booked == [{"customer_id": ana.id, "party_size": 2, "pools": ["location:" + uuid.UUID(at).hex]}]
    assert [r["customer_id"] for r in await rows(clean_db, sa.select(groups.c.customer_id))] == [ana.id]
