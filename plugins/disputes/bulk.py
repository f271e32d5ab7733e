"""Bulk refunds and captures: a job whose items the worker works one per transaction, through
the deposits service (its state rules, refund caps and provider idempotency keys apply).

An item's money and its result commit together, so a worker stopped mid-job leaves the item it
was on pending (its provider call, retried, carries the same key) and never repeats a finished
one; an item refused (a 409, a 404) is recorded failed with its reason and the next one goes
on. Each item carries its own idempotency key: the same key in a later job answers the first
refund instead of refunding again.
"""
from __future__ import annotations

import logging
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from myhibachi.core import DepositOperations, Principal, Problem, invalid, not_found, publish
from myhibachi.plugins.disputes.models import bulk_items as I
from myhibachi.plugins.disputes.models import bulk_jobs as J

log = logging.getLogger("myhibachi.disputes")
NAMESPACE = uuid.UUID("4c2e9a71-0d5b-4b8f-a3e6-9f1d7c2b5e08")
RETRIED = 3  # a provider outage (503) is retried this many times before the item fails


def check(body) -> None:
    seen: set[str] = set()
    for i, item in enumerate(body.items):
        if item.idempotency_key in seen:
            raise invalid(f"items.{i}.idempotency_key", "used by an earlier item")
        seen.add(item.idempotency_key)
        if body.action == "capture" and not item.payment_method:
            raise invalid(f"items.{i}.payment_method", "a capture needs a payment method")
        if body.action == "capture" and item.amount_cents is not None:
            raise invalid(f"items.{i}.amount_cents", "a capture takes the deposit's amount")


async def start(conn, scope: str, key: str, body) -> dict[str, Any]:
    """The job, one per caller and ``Idempotency-Key``, with its items pending."""
    check(body)
    job_id = uuid.uuid5(NAMESPACE, f"bulk|{scope}|{key}")
    made = await conn.fetch_one(pg_insert(J).values(id=job_id, requested_by=scope, action=body.action,
                                                    total=len(body.items))
                                .on_conflict_do_nothing(index_elements=["id"]).returning(J.c.id))
    if made is not None:
        await conn.run(sa.insert(I), [{"job_id": job_id, "seq": i, **item.model_dump()}
                                      for i, item in enumerate(body.items)])
    return await get(conn, job_id)


async def get(conn, job_id: uuid.UUID) -> dict[str, Any]:
    job = await conn.fetch_one(sa.select(J).where(J.c.id == job_id))
    if job is None:
        raise not_found("Bulk job")
    items = [dict(r) for r in await conn.fetch_all(sa.select(I).where(I.c.job_id == job_id).order_by(I.c.seq))]
    return {**job, "results": items, "succeeded": sum(i["status"] == "succeeded" for i in items),
            "failed": sum(i["status"] == "failed" for i in items)}


_NEXT = (sa.select(I, J.c.action, J.c.requested_by).join(J, J.c.id == I.c.job_id)
         .where(I.c.status == "pending").order_by(J.c.created_at, I.c.job_id, I.c.seq).limit(1)
         .with_for_update(of=I, skip_locked=True))


def _problem(exc: Problem) -> dict[str, Any]:
    return {"status": exc.status, "title": exc.title, "detail": exc.detail}


async def step(ctx) -> int:
    """Work the next pending item of the oldest job, in its own transaction."""
    deposits = ctx.service(DepositOperations, caller="disputes")
    async with ctx.db.transaction() as conn:
        item = await conn.fetch_one(_NEXT)
        if item is None:
            return 0
        # the staff member's request was authorised with payments.write; the worker acts for them
        actor = Principal("system", item["requested_by"], frozenset({"payments.write"}))
        values: dict[str, Any] = {"attempts": item["attempts"] + 1}
        try:
            async with conn.savepoint():
                if item["action"] == "refund":
                    refund = await deposits.refund(conn, actor, item["deposit_id"], amount_cents=item["amount_cents"],
                                                   reason=item["reason"] or "bulk refund",
                                                   key=f"{item['requested_by']}|{item['idempotency_key']}")
                    values.update(status="succeeded", result={"refund_id": str(refund["id"]),
                                                              "amount_cents": refund["amount_cents"],
                                                              "provider_refund_id": refund["provider_refund_id"]})
                else:
                    dep = await deposits.capture(conn, actor, item["deposit_id"], payment_method=item["payment_method"])
                    ok = dep["status"] != "failed"
                    values.update(status="succeeded" if ok else "failed", result={"deposit_status": dep["status"]},
                                  error=None if ok else {"status": 402, "title": "Payment failed",
                                                         "detail": dep["failure_reason"]})
        except Problem as exc:
            transient = exc.status == 503 and values["attempts"] < RETRIED
            values.update(status="pending" if transient else "failed", error=_problem(exc))
        except Exception as exc:  # a fault in one item is its failure, never the job's
            log.exception("bulk item %s/%s failed", item["job_id"], item["seq"])
            values.update(status="failed", error={"status": 500, "title": type(exc).__name__, "detail": str(exc)[:500]})
        if values.get("status") != "pending":
            values["finished_at"] = sa.func.now()
        await conn.run(sa.update(I).where(I.c.job_id == item["job_id"], I.c.seq == item["seq"]).values(**values))
        await conn.run(sa.update(J).where(J.c.id == item["job_id"], J.c.status == "queued").values(status="running"))
        left = await conn.scalar(sa.select(sa.func.count()).select_from(I).where(
            I.c.job_id == item["job_id"], I.c.status == "pending"))
        if not left:
            done = await conn.fetch_one(sa.update(J).where(J.c.id == item["job_id"], J.c.status != "done")
                                        .values(status="done", finished_at=sa.func.now()).returning(J.c.id))
            if done is not None:
                job = await get(conn, item["job_id"])
                await publish(conn, ctx, "payment.bulk_completed", {
                    "job_id": str(job["id"]), "action": job["action"], "succeeded": job["succeeded"],
                    "failed": job["failed"]}, actor=item["requested_by"])
        return 1
