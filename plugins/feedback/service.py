"""Feedback stored (sealed, scored), listed and summed up, and the words for other plugins."""
from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from myhibachi.core import check_owner_or, conflict, fetch_page, invalid, not_found, publish, reseal, tables, vault
from myhibachi.plugins.feedback.models import SENTIMENTS
from myhibachi.plugins.feedback.models import customer_feedback as F

POSITIVE, NEGATIVE = 0.05, -0.05  # VADER's own thresholds for its compound score
_analyzer = None

_BOOKING = sa.select(tables.bookings.c.customer_id, tables.bookings.c.status).where(
    tables.bookings.c.id == sa.bindparam("booking_id"))
_CUSTOMER = sa.select(tables.customers.c.id).where(tables.customers.c.id == sa.bindparam("customer_id"))
_TAKEN = sa.select(F.c.id).where(F.c.booking_id == sa.bindparam("booking_id"))


def sentiment(text: str) -> tuple[float, str]:
    """VADER's compound score of ``text`` (-1..1) and its label."""
    global _analyzer
    if _analyzer is None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        _analyzer = SentimentIntensityAnalyzer()
    score = round(_analyzer.polarity_scores(text)["compound"], 4)
    return score, "positive" if score >= POSITIVE else "negative" if score <= NEGATIVE else "neutral"


def _aad(feedback_id) -> str:
    return f"customer_feedback.text:{feedback_id}"


def view(ctx, row) -> dict[str, Any]:
    data = {k: v for k, v in row.items() if k not in ("text_enc", "key_id")}
    return {**data, "text": vault(ctx).decrypt(row["text_enc"], row["key_id"], _aad(row["id"]))}


async def customer_for(conn, customer_id: uuid.UUID, principal, permission: str) -> None:
    """Customers reach only their own feedback (another's is 404); staff need ``permission``."""
    check_owner_or(principal, customer_id, permission, "Customer")
    if await conn.fetch_one(_CUSTOMER, {"customer_id": customer_id}) is None:
        raise not_found("Customer")


async def submit(conn, ctx, customer_id: uuid.UUID, booking_id: uuid.UUID, rating: int, text: str,
                 principal) -> dict[str, Any]:
    """Store the customer's feedback on their completed booking, sealed and scored, and
    publish ``feedback.submitted`` in the same transaction. Another customer's booking is a
    404 and a booking not completed a 409, both naming ``body.booking_id``; a second feedback
    on a booking is a 409 naming the first."""
    booking = await conn.fetch_one(_BOOKING, {"booking_id": booking_id})
    if booking is None or booking["customer_id"] != customer_id:
        raise invalid("booking_id", "no such booking of this customer", status=404)
    if booking["status"] != "completed":
        raise invalid("booking_id", f"the booking is {booking['status']}; feedback opens once it is completed",
                      status=409)
    fid, box = uuid.uuid4(), vault(ctx)
    score, label = sentiment(text)
    row = await conn.fetch_one(pg_insert(F).values(
        id=fid, customer_id=customer_id, booking_id=booking_id, rating=rating, key_id=box.current_id,
        text_enc=box.encrypt(text, _aad(fid)), sentiment_score=score, sentiment=label, submitted_by=principal.id,
    ).on_conflict_do_nothing(index_elements=[F.c.booking_id]).returning(*F.c))
    if row is None:
        first = await conn.scalar(_TAKEN, {"booking_id": booking_id})
        raise conflict("this booking already has its feedback", feedback_id=str(first))
    await publish(conn, ctx, "feedback.submitted", {
        "feedback_id": str(fid), "customer_id": str(customer_id), "booking_id": str(booking_id), "rating": rating,
        "sentiment": label}, actor=principal.id)
    return {**row, "text": text}


def _filters(customer_id=None, sentiment=None, min_rating=None, max_rating=None, booking_id=None,
             submitted_from=None, submitted_to=None) -> list:
    cond = []
    for value, clause in ((customer_id, lambda v: F.c.customer_id == v), (sentiment, lambda v: F.c.sentiment == v),
                          (min_rating, lambda v: F.c.rating >= v), (max_rating, lambda v: F.c.rating <= v),
                          (booking_id, lambda v: F.c.booking_id == v),
                          (submitted_from, lambda v: F.c.created_at >= v), (submitted_to, lambda v: F.c.created_at < v)):
        if value is not None:
            cond.append(clause(value))
    return cond


async def page(conn, ctx, *, limit: int, cursor: str | None, **filters) -> tuple[list[dict[str, Any]], str | None]:
    """One page of feedback, newest first, filtered."""
    rows, after = await fetch_page(conn, sa.select(F).where(*_filters(**filters)), (F.c.created_at, F.c.id),
                                   limit=limit, cursor=cursor)
    return [view(ctx, r) for r in rows], after


def _counts(prefix: str = "") -> list:
    return [sa.func.count().filter(F.c.sentiment == s).label(prefix + s) for s in SENTIMENTS]


async def summary(conn, time_zone: str, **filters) -> dict[str, Any]:
    """Counts by sentiment and rating, the averages, and the trend by local month, summed in SQL."""
    cond = _filters(**filters)
    total = await conn.fetch_one(sa.select(
        sa.func.count().label("count"), sa.func.avg(F.c.rating).label("average_rating"),
        sa.func.avg(F.c.sentiment_score).label("average_sentiment"), *_counts(),
        *[sa.func.count().filter(F.c.rating == r).label(f"r{r}") for r in range(1, 6)]).where(*cond))
    month = sa.func.to_char(sa.func.timezone(time_zone, F.c.created_at), "YYYY-MM").label("month")
    months = await conn.fetch_all(sa.select(
        month, sa.func.count().label("count"), sa.func.avg(F.c.rating).label("average_rating"),
        sa.func.avg(F.c.sentiment_score).label("average_sentiment"), *_counts()).where(*cond)
        .group_by(month).order_by(month))

    def averages(r) -> dict[str, Any]:
        return {k: None if r[k] is None else round(float(r[k]), 3) for k in ("average_rating", "average_sentiment")}

    return {"time_zone": time_zone, "count": total["count"], **averages(total),
            "sentiments": {s: total[s] for s in SENTIMENTS}, "ratings": {str(r): total[f"r{r}"] for r in range(1, 6)},
            "months": [{"month": m["month"], "count": m["count"], **averages(m),
                        "sentiments": {s: m[s] for s in SENTIMENTS}} for m in months]}


class Texts:
    """The words of feedback, for other plugins (the ``CustomerFeedback`` service)."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx

    async def feedback_text(self, conn, feedback_id: uuid.UUID) -> str | None:
        row = await conn.fetch_one(sa.select(F).where(F.c.id == feedback_id))
        return None if row is None else view(self.ctx, row)["text"]


async def export_sections(conn, ctx, customer_id: uuid.UUID) -> dict[str, list[dict[str, Any]]]:
    """Every feedback the customer left, opened, for their data export."""
    rows = await conn.fetch_all(sa.select(F).where(F.c.customer_id == customer_id).order_by(F.c.created_at, F.c.id))
    return {"feedback.feedback": [view(ctx, r) for r in rows]}


async def merge_customer(conn, source_id: uuid.UUID, target_id: uuid.UUID) -> None:
    """A merge: the duplicate's feedback (on bookings the core moved too) becomes the kept customer's."""
    await conn.run(sa.update(F).where(F.c.customer_id == source_id).values(customer_id=target_id))


async def erase_customer(conn, customer_id: uuid.UUID) -> None:
    """An erasure: the customer's feedback goes, their words with it."""
    await conn.run(sa.delete(F).where(F.c.customer_id == customer_id))


async def rotate_keys(conn, ctx, *, batch: int) -> int:
    """Every feedback text sealed again under the current PII key."""
    return await reseal(conn, ctx, F, lambda row, field: _aad(row["id"]), batch=batch)
