"""Bookings: rules, lifecycle, pagination, events, capacity under concurrency, and the hooks."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from myhibachi.core import hookimpl
from myhibachi.core.errors import Problem
from myhibachi.core.models import bookings, outbox_events

from .booking_plugin import Asks, FLAG, BookingHooks
from .conftest import booking_body, local_start


async def events_named(db, name: str) -> list[dict]:
    async with db.read() as conn:
        rows = [tuple(r.values()) for r in await conn.fetch_all(sa.select(outbox_events.c.payload, outbox_events.c.actor)
                                   .where(outbox_events.c.name == name)
                                   .order_by(outbox_events.c.created_at))]
    return [dict(payload, _actor=actor) for payload, actor in rows]


async def count_bookings(db) -> int:
    async with db.read() as conn:
        return await conn.scalar(sa.select(sa.func.count()).select_from(bookings))


# --- create and rules ----------------------------------------------------------------------


async def test_customer_creates_booking_priced_and_published(make_app, client_of, add_customer, clean_db):
    cid, auth = await add_customer()
    app = make_app([])
    async with client_of(app) as c:
        r = await c.post("/v1/bookings", json=booking_body(), headers=auth)
    assert r.status_code == 201, r.text
    b = r.json()
    assert b["customer_id"] == str(cid) and b["status"] == "pending"
    assert b["party_size"] == 10 and b["adults"] == 8 and b["children"] == 2
    assert b["time_zone"] == "America/New_York" and b["local_start"] == local_start()
    start = datetime.fromisoformat(local_start()).replace(tzinfo=ZoneInfo("America/New_York"))
    assert datetime.fromisoformat(b["starts_at"]) == start
    assert b["duration_minutes"] == 120
    # 8 x 60.00 + 2 x 30.00 = 540.00, below the 550.00 minimum: a minimum line tops it up.
    assert [(line["code"], line["amount_cents"]) for line in b["price_lines"]] == [
        ("base.adults", 48000), ("base.children", 6000), ("base.minimum", 1000)]
    assert b["total_cents"] == 55000 == sum(line["amount_cents"] for line in b["price_lines"])
    created = await events_named(clean_db, "booking.created")
    assert created == [{"booking_id": b["id"], "customer_id": str(cid), "starts_at": start.astimezone(
        ZoneInfo("UTC")).isoformat(), "time_zone": "America/New_York", "party_size": 10, "total_cents": 55000,
        "_actor": str(cid)}]


async def test_a_retried_create_gets_the_first_answer_byte_for_byte_and_books_once(make_app, client_of,
                                                                                    add_customer, clean_db):
    """Create with an ``Idempotency-Key`` (optional on this route): the retry is not booked
    again and gets the first response's very bytes (broken on purpose: stored as jsonb, the
    replay's keys come back in jsonb's order)."""
    _, auth = await add_customer()
    app = make_app([])
    headers = {**auth, "Idempotency-Key": str(uuid.uuid4())}
    async with client_of(app) as c:
        first = await c.post("/v1/bookings", json=booking_body(), headers=headers)
        retry = await c.post("/v1/bookings", json=booking_body(), headers=headers)
    assert first.status_code == retry.status_code == 201, first.text
    assert retry.headers["idempotent-replayed"] == "true" and retry.content == first.content
    assert await count_bookings(clean_db) == 1


async def test_a_booking_request_leaves_nothing_for_the_garbage_collector(make_app, client_of, add_customer):
    """A create frees its request, connection and transaction by reference counting alone:
    a request left in a reference cycle waits for the cyclic collector, whose full passes
    walk every object the process holds (broken on purpose: the audit's before-commit
    callback kept after the commit, holding the request and its connection: red)."""
    import gc

    from starlette.requests import Request

    from myhibachi.core.db import Conn

    _, auth = await add_customer()
    app = make_app([])
    async with client_of(app) as c:
        for hour in (0, 1):  # the first builds what lives on (caches, the pool's connection)
            r = await c.post("/v1/bookings", json=booking_body(starts_at=local_start(hour=12 + hour)), headers=auth)
            assert r.status_code == 201, r.text
            if hour == 0:
                gc.collect()
                gc.disable()
        try:
            gc.set_debug(gc.DEBUG_SAVEALL)
            gc.collect()
            left = [type(o) for o in gc.garbage if isinstance(o, (Conn, Request))]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
    assert left == []


async def test_aware_start_equals_local_start_in_time_zone(make_app, client_of, add_customer):
    _, auth = await add_customer()
    app = make_app([])
    aware = datetime.fromisoformat(local_start(hour=18)).replace(tzinfo=ZoneInfo("America/New_York"))
    async with client_of(app) as c:
        r = await c.post("/v1/bookings", json=booking_body(starts_at=aware.astimezone(ZoneInfo("UTC")).isoformat()),
                         headers=auth)
    assert r.status_code == 201, r.text
    assert r.json()["local_start"] == local_start(hour=18)


async def test_bad_input_is_422_naming_the_field_and_writes_nothing(make_app, client_of, add_customer, clean_db):
    _, auth = await add_customer()
    app = make_app([])
    cases = {
        "time_zone": booking_body(time_zone="Mars/Olympus"),
        "starts_at": booking_body(starts_at="2027-03-14T02:30:00"),  # skipped by the DST change
        "adults": booking_body(adults=1, children=0),
        "notes": booking_body(notes="bad\x00byte"),
        "zip_code": booking_body(zip_code="ABCDE"),
        "extra": booking_body(extra={"location_id": "x"}),  # no free-form bag: only declared fields
        "address": booking_body(address=""),
        "duration_minutes": booking_body(duration_minutes=400),
    }
    async with client_of(app) as c:
        for field, body in cases.items():
            r = await c.post("/v1/bookings", json=body, headers=auth)
            assert r.status_code == 422, (field, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["errors"][0]["field"] == f"body.{field}", (field, r.json())
        big = await c.post("/v1/bookings", json=booking_body(adults=70), headers=auth)
    assert big.status_code == 422 and "at most 60" in big.json()["detail"]
    assert await count_bookings(clean_db) == 0


async def test_business_rules_from_settings(make_app, client_of, add_customer):
    _, auth = await add_customer()
    app = make_app([], booking_lead_time_hours=72, booking_max_advance_days=20, booking_slot_minutes=90,
                   business_open=time(12, 0), business_close=time(20, 0))
    cases = [
        (local_start(days_ahead=2, hour=12), "72 hours ahead"),
        (local_start(days_ahead=25, hour=12), "20 days ahead"),
        (local_start(hour=11), "90-minute slot from 12:00"),
        (local_start(hour=14), "90-minute slot from 12:00"),
        (local_start(hour=19, minute=30), "end by 20:00"),
    ]
    async with client_of(app) as c:
        for start, message in cases:
            r = await c.post("/v1/bookings", json=booking_body(starts_at=start), headers=auth)
            assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.starts_at", r.text
            assert message in r.json()["detail"], (start, r.json()["detail"])
        ok = await c.post("/v1/bookings", json=booking_body(starts_at=local_start(hour=13, minute=30)), headers=auth)
        last = await c.post("/v1/bookings", json=booking_body(starts_at=local_start(hour=18)), headers=auth)
    assert ok.status_code == 201, ok.text
    assert last.status_code == 201, last.text


async def test_staff_create_needs_permission_and_a_real_customer(make_app, client_of, add_customer, staff):
    cid, auth = await add_customer()
    other, _ = await add_customer()
    writer = await staff(["bookings.write"])
    reader = await staff(["bookings.read"])
    app = make_app([])
    async with client_of(app) as c:
        anonymous = await c.post("/v1/bookings", json=booking_body(customer_id=str(cid)))
        forbidden = await c.post("/v1/bookings", json=booking_body(customer_id=str(cid)), headers=reader)
        missing = await c.post("/v1/bookings", json=booking_body(), headers=writer)
        unknown = await c.post("/v1/bookings", json=booking_body(customer_id=str(uuid.uuid4())), headers=writer)
        for_other = await c.post("/v1/bookings", json=booking_body(customer_id=str(other)), headers=auth)
        ok = await c.post("/v1/bookings", json=booking_body(customer_id=str(cid)), headers=writer)
    assert anonymous.status_code == 401
    assert forbidden.status_code == 403 and forbidden.json()["permission"] == "bookings.write"
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "body.customer_id"
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "body.customer_id"
    assert for_other.status_code == 403
    assert ok.status_code == 201 and ok.json()["customer_id"] == str(cid)


async def test_get_owner_or_bookings_read(make_app, client_of, add_customer, staff):
    _, auth = await add_customer()
    _, stranger = await add_customer()
    reader = await staff(["bookings.read"])
    nobody = await staff(["plugins.read"])
    app = make_app([])
    async with client_of(app) as c:
        bid = (await c.post("/v1/bookings", json=booking_body(), headers=auth)).json()["id"]
        own = await c.get(f"/v1/bookings/{bid}", headers=auth)
        other = await c.get(f"/v1/bookings/{bid}", headers=stranger)
        by_staff = await c.get(f"/v1/bookings/{bid}", headers=reader)
        no_perm = await c.get(f"/v1/bookings/{bid}", headers=nobody)
        anonymous = await c.get(f"/v1/bookings/{bid}")
        missing = await c.get(f"/v1/bookings/{uuid.uuid4()}", headers=reader)
        bad_id = await c.get("/v1/bookings/not-a-uuid", headers=reader)
    assert own.status_code == 200 and own.json()["id"] == bid
    assert other.status_code == 404
    assert by_staff.status_code == 200
    assert no_perm.status_code == 403 and no_perm.json()["permission"] == "bookings.read"
    assert anonymous.status_code == 401
    assert missing.status_code == 404
    assert bad_id.status_code == 422 and bad_id.json()["errors"][0]["field"] == "path.booking_id"


# --- list --------------------------------------------------------------------------------


async def test_list_cursor_pagination_and_filters(make_app, client_of, add_customer, staff):
    first, auth = await add_customer()
    second, auth2 = await add_customer()
    reader = await staff(["bookings.read"])
    writer = await staff(["bookings.write"])
    app = make_app([], booking_capacity=10)
    made = []
    async with client_of(app) as c:
        for day in range(5, 12):
            r = await c.post("/v1/bookings", json=booking_body(starts_at=local_start(day)), headers=auth)
            made.append(r.json())
        theirs = (await c.post("/v1/bookings", json=booking_body(starts_at=local_start(4)), headers=auth2)).json()
        await c.post(f"/v1/bookings/{made[0]['id']}/confirm", headers=writer)

        seen, cursor, pages = [], None, 0
        while True:
            params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
            page = (await c.get("/v1/bookings", params=params, headers=reader)).json()
            seen += [b["id"] for b in page["items"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        own = (await c.get("/v1/bookings", headers=auth2)).json()
        spy = await c.get("/v1/bookings", params={"customer_id": str(first)}, headers=auth2)
        confirmed = (await c.get("/v1/bookings", params={"status": "confirmed"}, headers=reader)).json()
        by_customer = (await c.get("/v1/bookings", params={"customer_id": str(second)}, headers=reader)).json()
        ranged = (await c.get("/v1/bookings", params={
            "starts_from": made[2]["starts_at"], "starts_to": made[4]["starts_at"]}, headers=reader)).json()
        bad_cursor = await c.get("/v1/bookings", params={"cursor": "bm90IGEgY3Vyc29y"}, headers=reader)
        too_many = await c.get("/v1/bookings", params={"limit": 201}, headers=reader)
        anonymous = await c.get("/v1/bookings")
    everything = [b["id"] for b in made] + [theirs["id"]]
    assert pages == 3 and len(seen) == 8 and sorted(seen) == sorted(everything)
    assert seen[0] == theirs["id"]  # newest first
    assert [b["id"] for b in own["items"]] == [theirs["id"]] and own["next_cursor"] is None
    assert spy.status_code == 403
    assert [b["id"] for b in confirmed["items"]] == [made[0]["id"]]
    assert [b["id"] for b in by_customer["items"]] == [theirs["id"]]
    assert sorted(b["id"] for b in ranged["items"]) == sorted(b["id"] for b in made[2:4])
    assert bad_cursor.status_code == 422 and bad_cursor.json()["errors"][0]["field"] == "query.cursor"
    assert too_many.status_code == 422 and too_many.json()["errors"][0]["field"] == "query.limit"
    assert anonymous.status_code == 401


# --- sealed at rest -------------------------------------------------------------------------

PLANTED = {"address": "41 Quillfeather Lane, Springfield", "menu": "yuzu scallops", "notes": "gate code 7731"}


async def test_address_menu_and_notes_are_sealed_at_rest_and_answered_plain(make_app, client_of, add_customer,
                                                                            clean_db):
    """The address, menu and notes are stored sealed (under the current key, bound to the
    booking and field) and every read answers them plain: create, get, list, update, a
    status change and the service plugins call. Broken on purpose by storing them as given
    in ``bookings.sealed``: red (the row holds the planted words)."""
    from myhibachi.core import bookings as svc
    from myhibachi.core.auth import Principal
    from myhibachi.core.crypto import vault

    cid, auth = await add_customer()
    app = make_app([])
    ctx = app.state.ctx
    async with client_of(app) as c:
        made = await c.post("/v1/bookings", json=booking_body(**PLANTED), headers=auth)
        bid = made.json()["id"]
        got = await c.get(f"/v1/bookings/{bid}", headers=auth)
        listed = await c.get("/v1/bookings", headers=auth)
        changed = await c.patch(f"/v1/bookings/{bid}", json={"notes": "ring twice", "menu": None}, headers=auth)
        cancelled = await c.post(f"/v1/bookings/{bid}/cancel", json={}, headers=auth)
    assert made.status_code == 201 and got.status_code == listed.status_code == 200, made.text
    for answer in (made.json(), got.json(), listed.json()["items"][0]):
        assert {f: answer[f] for f in PLANTED} == PLANTED
    assert changed.status_code == 200 and cancelled.status_code == 200, changed.text
    for answer in (changed.json(), cancelled.json()):
        assert (answer["address"], answer["menu"], answer["notes"]) == (PLANTED["address"], None, "ring twice")
    async with clean_db.read() as conn:
        row = await conn.fetch_one(sa.select(bookings).where(bookings.c.id == uuid.UUID(bid)))
        served = await svc.get_booking(conn, ctx, Principal("customer", str(cid)), uuid.UUID(bid))
    stored = " ".join(str(v) for v in row.values()).lower()
    assert not [w for w in ("quillfeather", "yuzu", "gate code", "ring twice") if w in stored]
    assert row["key_id"] == vault(ctx).current_id and row["menu_enc"] is None
    assert vault(ctx).decrypt(row["notes_enc"], row["key_id"], f"bookings.notes:{bid}") == "ring twice"
    assert (served["address"], served["notes"]) == (PLANTED["address"], "ring twice")
    assert not {"address_enc", "menu_enc", "notes_enc", "key_id"} & set(served)


async def test_a_sealed_booking_field_is_bound_to_its_booking_and_field(make_app, client_of, add_customer):
    """A ciphertext moved to another booking's row, or to another field of the same row, does
    not open: whoever can write the table cannot hand one booking's address to another. As the
    customers' swap test, reading such a row raises (no answer with the wrong data). Broken on
    purpose by sealing with an associated data without the booking id in ``bookings._aad``:
    red (the swapped rows read back each other's address)."""
    from cryptography.exceptions import InvalidTag

    _, auth = await add_customer()
    app = make_app([])
    ctx = app.state.ctx
    async with client_of(app) as c:
        one = (await c.post("/v1/bookings", json=booking_body(**PLANTED), headers=auth)).json()
        two = (await c.post("/v1/bookings", json=booking_body(starts_at=local_start(8), address="9 Elm Row"),
                            headers=auth)).json()
        async with ctx.db.transaction() as conn:  # one statement reads both rows before either changes
            await conn.run(sa.text("UPDATE bookings SET address_enc = other.address_enc FROM bookings other "
                                   "WHERE (bookings.id, other.id) IN ((:a, :b), (:b, :a))"),
                           {"a": uuid.UUID(one["id"]), "b": uuid.UUID(two["id"])})
        for booking in (one, two):
            with pytest.raises(InvalidTag):
                await c.get(f"/v1/bookings/{booking['id']}", headers=auth)

        # the row's own notes sealed into its menu column does not open either
        async with ctx.db.transaction() as conn:
            await conn.run(sa.text("UPDATE bookings SET address_enc = :a WHERE id = :id"), {
                "id": uuid.UUID(one["id"]), "a": ctx.extra["vault"].encrypt(PLANTED["address"],
                                                                            f"bookings.address:{one['id']}")})
            await conn.run(sa.text("UPDATE bookings SET menu_enc = notes_enc WHERE id = :id"), {"id": one["id"]})
        with pytest.raises(InvalidTag):
            await c.get(f"/v1/bookings/{one['id']}", headers=auth)


async def test_rotating_the_pii_key_reseals_bookings(make_app, client_of, add_customer, clean_db):
    """``bookings.rotate_keys`` (run by ``myhibachi admin rotate-pii``) seals every booking again
    under the current key; they answer as before, also once the old key is gone."""
    from types import SimpleNamespace

    from myhibachi.core import bookings as svc
    from myhibachi.core.crypto import Vault, new_key_spec, parse_keys

    _, auth = await add_customer()
    async with client_of(make_app([])) as c:
        bid = (await c.post("/v1/bookings", json=booking_body(**PLANTED), headers=auth)).json()["id"]
    spec = new_key_spec("k7")
    rotated = make_app([], pii_keys=spec)
    async with clean_db.transaction() as conn:
        assert await svc.rotate_keys(conn, rotated.state.ctx) == 1
        assert await svc.rotate_keys(conn, rotated.state.ctx) == 0
        row = await conn.fetch_one(sa.select(bookings))
    # k7 alone opens the row now
    only_k7 = SimpleNamespace(extra={"vault": Vault(parse_keys(spec), b"")})
    assert row["key_id"] == "k7" and {f: svc.opened(only_k7, dict(row))[f] for f in PLANTED} == PLANTED
    async with client_of(rotated) as c:
        got = (await c.get(f"/v1/bookings/{bid}", headers=auth)).json()
    assert {f: got[f] for f in PLANTED} == PLANTED


# --- update and transitions -----------------------------------------------------------------


async def test_update_revalidates_reprices_and_publishes_changes(make_app, client_of, add_customer, clean_db):
    """A change is re-validated and re-priced; booking.updated names each changed field, with
    the address, menu and notes masked (the outbox keeps payloads for days). Broken on purpose
    by publishing their plain old and new values: red ("peanuts" in the outbox)."""
    cid, auth = await add_customer()
    app = make_app([])
    async with client_of(app) as c:
        b = (await c.post("/v1/bookings", json=booking_body(), headers=auth)).json()
        off_grid = await c.patch(f"/v1/bookings/{b['id']}", json={"starts_at": local_start(hour=17, minute=20)},
                                 headers=auth)
        too_small = await c.patch(f"/v1/bookings/{b['id']}", json={"adults": 1, "children": 0}, headers=auth)
        null_address = await c.patch(f"/v1/bookings/{b['id']}", json={"address": None}, headers=auth)
        moved = await c.patch(f"/v1/bookings/{b['id']}", json={
            "starts_at": local_start(days_ahead=9, hour=19), "adults": 12, "notes": "allergic to peanuts"},
            headers=auth)
        notes_only = await c.patch(f"/v1/bookings/{b['id']}", json={"notes": "no peanuts at all"}, headers=auth)
    assert off_grid.status_code == 422 and off_grid.json()["errors"][0]["field"] == "body.starts_at"
    assert too_small.status_code == 422 and too_small.json()["errors"][0]["field"] == "body.adults"
    assert null_address.status_code == 422 and null_address.json()["errors"][0]["field"] == "body.address"
    assert moved.status_code == 200, moved.text
    m = moved.json()
    assert m["local_start"] == local_start(days_ahead=9, hour=19) and m["party_size"] == 14
    assert m["total_cents"] == 12 * 6000 + 2 * 3000 == sum(line["amount_cents"] for line in m["price_lines"])
    assert notes_only.status_code == 200 and notes_only.json()["total_cents"] == m["total_cents"]
    updates = await events_named(clean_db, "booking.updated")
    assert len(updates) == 2
    changes = updates[0]["changes"]
    assert set(changes) == {"starts_at", "adults", "party_size", "notes", "total_cents"}
    assert changes["adults"] == {"old": 8, "new": 12}
    assert changes["starts_at"]["new"] == m["starts_at"].replace("Z", "+00:00")
    assert changes["total_cents"] == {"old": 55000, "new": 78000}
    # the customer's words stay out of the outbox: the event says they changed, not what they were
    assert changes["notes"] == {"old": None, "new": "***"}
    assert updates[1]["changes"] == {"notes": {"old": "***", "new": "***"}}
    assert updates[0]["customer_id"] == str(cid)
    async with clean_db.read() as conn:  # broken on purpose by publishing the plain values: red
        payloads = " ".join(await conn.scalars(sa.text("SELECT payload::text FROM outbox_events")))
    assert "peanuts" not in payloads


async def test_status_transitions_and_their_events(make_app, client_of, add_customer, staff, clean_db):
    cid, auth = await add_customer()
    writer = await staff(["bookings.write"])
    app = make_app([])
    async with client_of(app) as c:
        a = (await c.post("/v1/bookings", json=booking_body(), headers=auth)).json()["id"]
        b = (await c.post("/v1/bookings", json=booking_body(starts_at=local_start(8)), headers=auth)).json()["id"]
        customer_confirms = await c.post(f"/v1/bookings/{a}/confirm", headers=auth)
        complete_pending = await c.post(f"/v1/bookings/{a}/complete", headers=writer)
        confirmed = await c.post(f"/v1/bookings/{a}/confirm", headers=writer)
        confirm_again = await c.post(f"/v1/bookings/{a}/confirm", headers=writer)
        completed = await c.post(f"/v1/bookings/{a}/complete", headers=writer)
        cancel_completed = await c.post(f"/v1/bookings/{a}/cancel", json={"reason": "late"}, headers=auth)
        change_completed = await c.patch(f"/v1/bookings/{a}", json={"notes": "x"}, headers=auth)
        cancelled = await c.post(f"/v1/bookings/{b}/cancel", json={"reason": "moved house"}, headers=auth)
        confirm_cancelled = await c.post(f"/v1/bookings/{b}/confirm", headers=writer)
    assert customer_confirms.status_code == 403
    assert complete_pending.status_code == 409
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "confirmed"
    assert confirm_again.status_code == 409
    assert completed.status_code == 200 and completed.json()["status"] == "completed"
    assert cancel_completed.status_code == 409 and cancel_completed.json()["status"] == 409
    assert change_completed.status_code == 409
    assert cancelled.status_code == 200 and cancelled.json()["cancel_reason"] == "moved house"
    assert confirm_cancelled.status_code == 409
    assert [e["booking_id"] for e in await events_named(clean_db, "booking.confirmed")] == [a]
    assert [e["booking_id"] for e in await events_named(clean_db, "booking.completed")] == [a]
    assert await events_named(clean_db, "booking.cancelled") == [
        {"booking_id": b, "customer_id": str(cid), "reason": "moved house", "_actor": str(cid)}]


async def test_cancelled_booking_frees_its_slot(make_app, client_of, add_customer):
    _, auth = await add_customer()
    app = make_app([], booking_capacity=1)
    async with client_of(app) as c:
        first = (await c.post("/v1/bookings", json=booking_body(), headers=auth)).json()
        # A 17:00 event of 120 minutes keeps 17:00 and 18:00 busy; 19:00 is free.
        clash = await c.post("/v1/bookings", json=booking_body(starts_at=local_start(hour=18)), headers=auth)
        after = await c.post("/v1/bookings", json=booking_body(starts_at=local_start(hour=19)), headers=auth)
        await c.post(f"/v1/bookings/{first['id']}/cancel", json={}, headers=auth)
        again = await c.post("/v1/bookings", json=booking_body(starts_at=local_start(hour=17)), headers=auth)
    assert clash.status_code == 409 and clash.json()["type"].endswith("/conflict")
    assert after.status_code == 201
    assert again.status_code == 201


async def test_capacity_holds_under_50_parallel_creates(make_app, client_of, add_customer):
    _, auth = await add_customer()
    app = make_app([], booking_capacity=5)
    async with client_of(app) as c:
        for _ in range(2):
            assert (await c.post("/v1/bookings", json=booking_body(), headers=auth)).status_code == 201
        results = await asyncio.gather(*[c.post("/v1/bookings", json=booking_body(), headers=auth)
                                         for _ in range(50)])
        listed = (await c.get("/v1/bookings", params={"limit": 100}, headers=auth)).json()["items"]
    codes = sorted(r.status_code for r in results)
    assert codes.count(201) == 3 and codes.count(409) == 47, codes
    assert len(listed) == 5


# --- hooks inside the flow ------------------------------------------------------------------


async def test_hook_validate_booking(make_app, client_of, add_customer, clean_db):
    _, auth = await add_customer()
    plugin = BookingHooks()
    app = make_app([plugin], flags={FLAG: True})
    async with client_of(app) as c:
        refused = await c.post("/v1/bookings", json=booking_body(booking_hooks={"refuse": "no grill space"}), headers=auth)
        taken = await c.post("/v1/bookings", json=booking_body(booking_hooks={"taken": True}), headers=auth)
        ok = await c.post("/v1/bookings", json=booking_body(booking_hooks={"promo": "north"}), headers=auth)
        refused_update = await c.patch(f"/v1/bookings/{ok.json()['id']}", json={"booking_hooks": {"refuse": "later"}},
                                       headers=auth)
    assert refused.status_code == 422 and refused.json()["reason"] == "the test plugin refuses: no grill space"
    assert taken.status_code == 409 and taken.json()["detail"] == "the grill is taken"
    assert ok.status_code == 201
    assert refused_update.status_code == 422
    seen = plugin.seen[2]
    assert str(seen.id) == ok.json()["id"] and seen.inputs == {"booking_hooks": Asks(promo="north")}
    assert seen.party_size == 10 and seen.local_start == local_start() and seen.stored is False
    # Validators only answer: what they are given cannot be changed.
    with pytest.raises(dataclasses.FrozenInstanceError):
        seen.notes = "changed"
    with pytest.raises(TypeError):
        seen.inputs["booking_hooks"] = Asks(promo="south")
    # Refusals roll back the row and its event with the transaction.
    assert await count_bookings(clean_db) == 1
    assert len(await events_named(clean_db, "booking.created")) == 1
    assert (await events_named(clean_db, "booking.created"))[0]["booking_hooks"] == {"promo": "north"}
    assert await events_named(clean_db, "booking.updated") == []


async def test_hook_price_booking(make_app, client_of, add_customer):
    _, auth = await add_customer()
    app = make_app([BookingHooks()], flags={FLAG: True})
    async with client_of(app) as c:
        r = await c.post("/v1/bookings", json=booking_body(adults=20, children=0, booking_hooks={"promo": "TENOFF"}),
                         headers=auth)
        free = await c.post("/v1/bookings", json=booking_body(starts_at=local_start(8), booking_hooks={"promo": "FREE"}),
                            headers=auth)
    b = r.json()
    assert [(line["code"], line["amount_cents"]) for line in b["price_lines"]] == [
        ("base.adults", 120000), ("promo.tenoff", -12000)]
    assert b["total_cents"] == 108000
    f = free.json()
    assert f["total_cents"] == 0 and f["price_lines"][-1]["code"] == "adjustment.floor"
    assert sum(line["amount_cents"] for line in f["price_lines"]) == 0


async def test_hook_booking_query_filters(make_app, client_of, add_customer, staff):
    _, auth = await add_customer()
    reader = await staff(["bookings.read"])
    app = make_app([BookingHooks()], flags={FLAG: True}, booking_capacity=5)
    async with client_of(app) as c:
        a = (await c.post("/v1/bookings", json=booking_body(zip_code="11111"), headers=auth)).json()
        await c.post("/v1/bookings", json=booking_body(zip_code="22222"), headers=auth)
        filtered = (await c.get("/v1/bookings", params={"zip": "11111"}, headers=reader)).json()
    assert [b["id"] for b in filtered["items"]] == [a["id"]]


async def test_hook_booking_limits(make_app, client_of, add_customer):
    """A limit's capacity counts the bookings of its pool; with no limit the setting holds."""
    _, auth = await add_customer()
    app = make_app([BookingHooks()], flags={FLAG: True}, booking_capacity=5)
    async with client_of(app) as c:
        none = await c.post("/v1/bookings", json=booking_body(booking_hooks={"capacity": 0}), headers=auth)
        one = await c.post("/v1/bookings", json=booking_body(booking_hooks={"capacity": 1}), headers=auth)
        full = await c.post("/v1/bookings", json=booking_body(booking_hooks={"capacity": 1}), headers=auth)
        default = await c.post("/v1/bookings", json=booking_body(), headers=auth)
    assert none.status_code == 409
    assert one.status_code == 201 and full.status_code == 409
    assert default.status_code == 201


async def test_hooks_skipped_when_plugin_flag_off(make_app, client_of, add_customer, staff):
    _, auth = await add_customer()
    reader = await staff(["bookings.read"])
    plugin = BookingHooks()
    app = make_app([plugin], flags={FLAG: False}, booking_capacity=5)
    async with client_of(app) as c:
        refused = await c.post("/v1/bookings", json=booking_body(booking_hooks={"refuse": "x"}), headers=auth)
        priced = await c.post("/v1/bookings", json=booking_body(adults=20, children=0, booking_hooks={"promo": "TENOFF"}),
                              headers=auth)
        capped = await c.post("/v1/bookings", json=booking_body(booking_hooks={"capacity": 0}), headers=auth)
        listed = (await c.get("/v1/bookings", params={"zip": "99999"}, headers=reader)).json()
    assert refused.status_code == 201
    assert priced.status_code == 201 and priced.json()["total_cents"] == 120000
    assert capped.status_code == 201
    assert len(listed["items"]) == 3
    assert plugin.seen == []


async def test_far_dates_and_unknown_customers_are_refused_not_500(make_app, client_of, add_customer, settings):
    from myhibachi.core.auth import issue_access_token

    _, auth = await add_customer()
    ghost, _ = issue_access_token(settings, subject=str(uuid.uuid4()), kind="customer")
    junk, _ = issue_access_token(settings, subject="not-a-uuid", kind="customer")
    app = make_app([])
    async with client_of(app) as c:
        far = await c.post("/v1/bookings", json=booking_body(starts_at="9999-12-31T23:00:00+00:00",
                                                                 time_zone="Asia/Tokyo"), headers=auth)
        early = await c.post("/v1/bookings", json=booking_body(starts_at="0001-01-01T00:30:00",
                                                                   time_zone="America/New_York"), headers=auth)
        window = await c.get("/v1/availability", params={"from": "9999-12-20", "to": "9999-12-31",
                                                         "time_zone": "Pacific/Kiritimati"})
        gone = await c.post("/v1/bookings", json=booking_body(), headers={"Authorization": f"Bearer {ghost}"})
        bad = await c.get("/v1/bookings", headers={"Authorization": f"Bearer {junk}"})
    assert far.status_code == 422 and far.json()["errors"][0]["field"] == "body.starts_at"
    assert early.status_code == 422 and early.json()["errors"][0]["field"] == "body.starts_at"
    assert window.status_code == 200 and window.json()["slots"] == []
    assert gone.status_code == 403
    assert bad.status_code == 401


async def test_openapi_documents_the_booking_routes(make_app, client_of):
    app = make_app([])
    async with client_of(app) as c:
        spec = (await c.get("/openapi.json")).json()
    paths = spec["paths"]
    assert {"/v1/bookings", "/v1/bookings/{booking_id}", "/v1/bookings/{booking_id}/cancel",
            "/v1/bookings/{booking_id}/confirm", "/v1/bookings/{booking_id}/complete", "/v1/bookings/quote",
            "/v1/availability"} <= set(paths)
    assert "409" in paths["/v1/bookings"]["post"]["responses"]
    assert paths["/v1/bookings"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "BookingPage")


def test_booking_settings_must_agree():
    from pydantic import ValidationError

    from myhibachi.core.settings import Settings

    for bad in ({"business_open": "20:00", "business_close": "10:00"},
                {"booking_min_party_size": 10, "booking_max_party_size": 5},
                {"booking_default_duration_minutes": 400}):
        with pytest.raises(ValidationError, match="must"):
            Settings(**bad)
    assert Settings(business_open="09:30", business_close="21:00").business_open.hour == 9


async def test_limits_in_separate_pools_do_not_compete(make_app, client_of, add_customer):
    """Each pool has the whole capacity to itself; without the hook both pools share one."""
    from .booking_plugin import PoolPlugin

    _, auth = await add_customer()
    on = {"FEATURE_FLAG_POOLS": True}
    app = make_app([PoolPlugin()], flags=on, booking_capacity=1)
    async with client_of(app) as c:
        east = await c.post("/v1/bookings", json=booking_body(pools={"pool": "east"}), headers=auth)
        west = await c.post("/v1/bookings", json=booking_body(pools={"pool": "west"}), headers=auth)
        east_again = await c.post("/v1/bookings", json=booking_body(pools={"pool": "east"}), headers=auth)
    assert east.status_code == 201 and west.status_code == 201, (east.text, west.text)
    assert east_again.status_code == 409
    assert east.json()["id"] != west.json()["id"]

    off = make_app([PoolPlugin()], flags={"FEATURE_FLAG_POOLS": False}, booking_capacity=1)
    async with client_of(off) as c:
        shared = await c.post("/v1/bookings", json=booking_body(pools={"pool": "north"}), headers=auth)
    assert shared.status_code == 409, shared.text


class Linker(BookingHooks):
    """Writes a row of its own with each booking, and refuses when told to (a rollback)."""

    @hookimpl
    async def booking_stored(self, booking, previous, conn):
        self.stored.append((booking, previous))
        if booking.notes == "fail to store":
            raise Problem(409, "Conflict", "the linker's resource is gone", kind="conflict")
        await conn.run("INSERT INTO booking_slots (slot_key) VALUES (:key)",
                       {"key": f"linked:{booking.id.hex[:8]}:{len(self.stored)}"})


async def test_hook_booking_stored(make_app, client_of, add_customer, clean_db):
    """Called in the booking's transaction after create, update and cancel; a raise rolls
    the booking back. Broken on purpose by not calling it on create: the failing create
    kept its row (two bookings) and the stored list lacked the create."""
    _, auth = await add_customer()
    plugin = Linker()
    app = make_app([plugin], flags={FLAG: True})
    async with client_of(app) as c:
        created = (await c.post("/v1/bookings", json=booking_body(), headers=auth)).json()
        await c.patch(f"/v1/bookings/{created['id']}", json={"notes": "gate code 12"}, headers=auth)
        await c.post(f"/v1/bookings/{created['id']}/cancel", json={}, headers=auth)
        failed = await c.post("/v1/bookings", json=booking_body(starts_at=local_start(8), notes="fail to store"),
                              headers=auth)
    assert failed.status_code == 409
    (first, none), (updated, before), (cancelled, active), _ = plugin.stored
    assert none is None and first.stored and str(first.id) == created["id"] and first.total_cents > 0
    assert before.notes is None and updated.notes == "gate code 12"
    assert active.status == "pending" and cancelled.status == "cancelled"
    assert await count_bookings(clean_db) == 1
    async with clean_db.read() as conn:
        linked = await conn.scalar("SELECT count(*) FROM booking_slots WHERE slot_key LIKE 'linked:%'")
    assert linked == 3


async def test_a_lone_surrogate_is_a_422_naming_the_field_and_writes_nothing(make_app, client_of, add_customer,
                                                                            clean_db):
    """JSON's "\\ud800" decodes to a lone surrogate PostgreSQL cannot store: in notes, menu,
    address, a cancel reason or an unknown field it is a 422 problem naming the field, never a
    500, and no booking is written. Broken on purpose by dropping the surrogate check in
    ``_no_nul`` and the errors fallback (500 on insert): red."""
    _, auth = await add_customer()
    app = make_app([])
    raw = {"content-type": "application/json", **auth}
    async with client_of(app) as c:
        for field in ("notes", "menu", "address", "extra"):
            body = json.dumps(booking_body(**{field: "SURROGATE"})).replace('"SURROGATE"', '"bad \\ud800 text"')
            r = await c.post("/v1/bookings", content=body, headers=raw)
            assert r.status_code == 422, (field, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["errors"][0]["field"] == f"body.{field}", (field, r.text)
    assert await count_bookings(clean_db) == 0
