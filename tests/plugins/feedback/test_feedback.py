"""Feedback history end to end: customers rate their completed bookings over HTTP, the words
sealed and scored by VADER, listed with filters and cursor pages, summed up by sentiment,
rating and month, and published as ``feedback.submitted``."""
from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import sqlalchemy as sa

from myhibachi.core.db import utcnow
from myhibachi.core.models import outbox_events
from myhibachi.plugins.feedback import FeedbackPlugin
from myhibachi.plugins.feedback.models import customer_feedback

FLAG = "FEATURE_FLAG_CUSTOMER_FEEDBACK_HISTORY"
PRAISE = "The chef was amazing, the food was delicious and the kids loved the show!"
COMPLAINT = "The chef arrived an hour late and the steak was cold. Very disappointing."


def app_of(make_app, flag=True):
    return make_app([FeedbackPlugin()], flags={FLAG: flag}, validate_events=True)


def field_of(response) -> str:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return response.json()["errors"][0]["field"]


async def rows(db, query):
    async with db.read() as conn:
        return [dict(r) for r in await conn.fetch_all(query)]


async def submitted(db):
    return [e["payload"] for e in await rows(db, sa.select(outbox_events).where(outbox_events.c.name == "feedback.submitted")
                                             .order_by(outbox_events.c.created_at))]


async def completed(app, client_of, seed, customer, count=1, days_ago=2):
    """Bookings of ``customer`` that staff mark completed over HTTP."""
    made = [await seed.booking(customer, utcnow() - timedelta(days=days_ago, hours=i)) for i in range(count)]
    async with client_of(app, headers=await seed.staff("bookings.write")) as c:
        for booking in made:
            done = await c.post(f"/v1/bookings/{booking}/complete")
            assert done.status_code == 200, done.text
    return made


async def test_customer_feedback_history(make_app, client_of, seed, rotate_pii):
    """A customer rates their own completed bookings; another's booking and one not completed
    are refused naming the field, a second feedback on a booking is a conflict; the words are
    sealed, scored, listed newest first in cursor pages and summed up by sentiment, rating and
    month; each feedback publishes ``feedback.submitted`` (ids, no words). Broken on purpose:
    without the completed check the confirmed booking takes feedback (red); storing the text
    in clear (red); the summary's month in UTC instead of the asked zone (red). After a PII key
    rotation both texts read back as written under the new key only (red without the plugin's
    rotate_keys)."""
    app = app_of(make_app)
    ana, bo = await seed.customer(), await seed.customer()
    praised, complained = await completed(app, client_of, seed, ana, 2)
    [bos] = await completed(app, client_of, seed, bo)
    upcoming = await seed.booking(ana, utcnow() + timedelta(days=5))
    url = f"/v1/customers/{ana}/feedback"
    async with client_of(app, headers=seed.token(ana)) as c:
        first = await c.post(url, json={"booking_id": str(praised), "rating": 5, "text": PRAISE})
        assert first.status_code == 201, first.text
        body = first.json()
        assert (body["booking_id"], body["rating"], body["text"], body["sentiment"]) == \
            (str(praised), 5, PRAISE, "positive")
        assert body["sentiment_score"] > 0.5 and body["submitted_by"] == str(ana)
        second = await c.post(url, json={"booking_id": str(complained), "rating": 2, "text": COMPLAINT})
        assert second.status_code == 201 and second.json()["sentiment"] == "negative", second.text
        assert second.json()["sentiment_score"] < -0.3

        not_done = await c.post(url, json={"booking_id": str(upcoming), "rating": 4, "text": "Looking forward"})
        assert not_done.status_code == 409 and field_of(not_done) == "body.booking_id", not_done.text
        assert "confirmed" in not_done.json()["detail"]
        theirs = await c.post(url, json={"booking_id": str(bos), "rating": 1, "text": "Awful"})
        assert theirs.status_code == 404 and field_of(theirs) == "body.booking_id", theirs.text
        again = await c.post(url, json={"booking_id": str(praised), "rating": 1, "text": "Changed my mind"})
        assert again.status_code == 409 and again.json()["feedback_id"] == body["id"], again.text
        for bad, field in (({"booking_id": str(praised), "rating": 6, "text": "x"}, "body.rating"),
                           ({"booking_id": str(praised), "rating": 3, "text": ""}, "body.text"),
                           ({"booking_id": "nope", "rating": 3, "text": "x"}, "body.booking_id"),
                           ({"booking_id": str(praised), "rating": 3, "text": "x", "stars": 3}, "body.stars")):
            refused = await c.post(url, json=bad)
            assert refused.status_code == 422 and field_of(refused) == field, refused.text
        other = await c.post(f"/v1/customers/{bo}/feedback", json={"booking_id": str(bos), "rating": 1, "text": "x"})
        assert other.status_code == 404

    stored = await rows(seed.db, sa.select(customer_feedback).order_by(customer_feedback.c.created_at))
    assert [(r["id"], r["customer_id"], r["booking_id"], r["rating"], r["sentiment"]) for r in stored] == [
        (uuid.UUID(body["id"]), ana, praised, 5, "positive"),
        (uuid.UUID(second.json()["id"]), ana, complained, 2, "negative")]
    assert all(PRAISE not in r["text_enc"] and "steak" not in r["text_enc"] for r in stored)
    assert await submitted(seed.db) == [
        {"feedback_id": body["id"], "customer_id": str(ana), "booking_id": str(praised), "rating": 5,
         "sentiment": "positive"},
        {"feedback_id": second.json()["id"], "customer_id": str(ana), "booking_id": str(complained), "rating": 2,
         "sentiment": "negative"}]

    # the praise was left on the 1st of November at 02:00 UTC: still October in Chicago
    async with seed.db.transaction() as conn:
        await conn.run(sa.update(customer_feedback).where(customer_feedback.c.id == stored[0]["id"])
                       .values(created_at=sa.text("'2026-11-01T02:00:00+00:00'")))
    async with client_of(app, headers=seed.token(ana)) as c:
        page = (await c.get(url, params={"limit": 1})).json()
        assert [i["text"] for i in page["items"]] == [COMPLAINT] and page["next_cursor"]
        rest = (await c.get(url, params={"limit": 1, "cursor": page["next_cursor"]})).json()
        assert [i["text"] for i in rest["items"]] == [PRAISE] and rest["next_cursor"] is None
        negative = (await c.get(url, params={"sentiment": "negative"})).json()["items"]
        assert [i["booking_id"] for i in negative] == [str(complained)]
        assert (await c.get(url, params={"sentiment": "angry"})).status_code == 422
        summary = await c.get(f"{url}/summary", params={"time_zone": "America/Chicago"})
        assert summary.status_code == 200, summary.text
        s = summary.json()
        assert (s["count"], s["average_rating"], s["sentiments"], s["ratings"]) == (
            2, 3.5, {"positive": 1, "neutral": 0, "negative": 1}, {"1": 0, "2": 1, "3": 0, "4": 0, "5": 1})
        assert s["average_sentiment"] == round((stored[0]["sentiment_score"] + stored[1]["sentiment_score"]) / 2, 3)
        this_month = utcnow().astimezone(__import__("zoneinfo").ZoneInfo("America/Chicago")).strftime("%Y-%m")
        assert [(m["month"], m["count"], m["average_rating"], m["sentiments"]["positive"]) for m in s["months"]] == [
            ("2026-10", 1, 5.0, 1), (this_month, 1, 2.0, 0)]
        bad_zone = await c.get(f"{url}/summary", params={"time_zone": "Mars/Olympus"})
        assert bad_zone.status_code == 422 and field_of(bad_zone) == "query.time_zone"
        assert (await c.get(f"/v1/customers/{bo}/feedback")).status_code == 404
        assert (await c.get("/v1/admin/feedback")).status_code == 403

    async with client_of(app, headers=await seed.staff("feedback.read")) as c:
        everyone = (await c.get("/v1/admin/feedback", params={"min_rating": 4})).json()
        assert [(i["customer_id"], i["rating"]) for i in everyone["items"]] == [(str(ana), 5)]
        assert (await c.get("/v1/admin/feedback/summary")).json()["count"] == 2
        assert (await c.get(f"/v1/customers/{ana}/feedback")).json()["items"][0]["text"] == COMPLAINT
        assert (await c.post(url, json={"booking_id": str(praised), "rating": 3, "text": "x"})).status_code == 403
    assert len(await submitted(seed.db)) == 2

    again, counts = await rotate_pii(app)
    assert counts["plugin row(s)"] == 2  # the praise and the complaint
    async with client_of(again, headers=seed.token(ana)) as c:
        read = await c.get(url)
    assert read.status_code == 200, read.text
    assert [(i["id"], i["text"]) for i in read.json()["items"]] == [(second.json()["id"], COMPLAINT),
                                                                     (body["id"], PRAISE)]


async def test_staff_record_feedback_once_however_often_it_is_sent(make_app, client_of, seed):
    """Staff with ``feedback.write`` record a customer's feedback (given on the phone); a retry
    with the same Idempotency-Key answers the first response, and two at once on one booking
    store one (the other is a 409, never a 500)."""
    app = app_of(make_app)
    ana = await seed.customer()
    first, second = await completed(app, client_of, seed, ana, 2)
    url = f"/v1/customers/{ana}/feedback"
    async with client_of(app, headers=await seed.staff("feedback.write")) as c:
        body = {"booking_id": str(first), "rating": 4, "text": "Great food, the chef was a bit quiet."}
        made = await c.post(url, json=body, headers={"Idempotency-Key": "fb-1"})
        replay = await c.post(url, json=body, headers={"Idempotency-Key": "fb-1"})
        assert made.status_code == replay.status_code == 201 and made.json() == replay.json(), replay.text
        assert made.json()["submitted_by"] != str(ana)
        both = await asyncio.gather(*[c.post(url, json={**body, "booking_id": str(second)}) for _ in range(2)])
        assert sorted(r.status_code for r in both) == [201, 409], [r.text for r in both]
    assert len(await rows(seed.db, sa.select(customer_feedback))) == 2 and len(await submitted(seed.db)) == 2


async def test_feedback_is_gated_and_follows_the_customer(make_app, client_of, seed):
    """Flag off: the routes answer 404 naming the flag. The customer hooks ignore it: the export
    opens the words, a merge moves them, an erasure removes them."""
    app = app_of(make_app)
    ana, dup = await seed.customer(), await seed.customer()
    [booking] = await completed(app, client_of, seed, dup)
    async with client_of(app, headers=seed.token(dup)) as c:
        assert (await c.post(f"/v1/customers/{dup}/feedback",
                             json={"booking_id": str(booking), "rating": 5, "text": PRAISE})).status_code == 201
    off = app_of(make_app, False)
    async with client_of(off, headers=seed.token(dup)) as c:
        gated = await c.get(f"/v1/customers/{dup}/feedback")
        assert gated.status_code == 404 and FLAG in gated.text
    ctx, plugin = off.state.ctx, FeedbackPlugin()
    async with seed.db.transaction() as conn:
        [opened] = (await plugin.customer_export_sections(dup, conn, ctx))["feedback.feedback"]
        assert opened["text"] == PRAISE
        await plugin.customer_merge(dup, ana, conn, ctx)
        assert (await plugin.customer_export_sections(ana, conn, ctx))["feedback.feedback"][0]["text"] == PRAISE
        await plugin.customer_erase(ana, conn, ctx)
    assert await rows(seed.db, sa.select(customer_feedback)) == []
