"""Deposits: the state machine, the provider calls (only through ``ctx.ports.payments``),
Stripe's events (from the core's webhook hub) and reconciliation, callable without HTTP.

Every provider call carries an idempotency key derived from the deposit (its id comes from
the caller's ``Idempotency-Key``), and confirm and cancel first read the provider's state:
a call that reached the provider before a crash rolled our transaction back is completed
by the retry or the reconcile poller, never repeated.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import math
import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, UUID, aggregate_order_by
from sqlalchemy.dialects.postgresql import insert as pg_insert

from myhibachi.core import (
    PortError, Principal, Problem, bookings, check_owner_or, conflict, fetch_page, invalid, not_found, publish,
    tables, utcnow, webhooks,
)
from myhibachi.plugins.deposits.models import deposit_refunds, deposits, payment_disputes
from myhibachi.plugins.deposits.schemas import BookingPayments

log = logging.getLogger("myhibachi.deposits")

NAMESPACE = uuid.UUID("6d1f0c52-3f7e-4b8e-9a51-0d2f3c1e7a10")
PRE_CAPTURE = ("requires_payment", "failed")
CAPTURED = ("succeeded", "partially_refunded")
ACTIVE = ("requires_payment", "processing", "succeeded", "partially_refunded")
# Every move a deposit may make; anything else is backwards (ignored from the provider, 409 from a caller).
MOVES: dict[str, set[str]] = {
    "requires_payment": {"processing", "failed", "succeeded", "partially_refunded", "refunded", "cancelled"},
    "processing": {"failed", "succeeded", "partially_refunded", "refunded", "cancelled"},
    "failed": {"processing", "succeeded", "partially_refunded", "refunded", "cancelled"},
    "succeeded": {"partially_refunded", "refunded"},
    "partially_refunded": {"partially_refunded", "refunded"},
    "refunded": set(),
    "cancelled": set(),
}
# The system acting on bookings when a payment succeeds.
SYSTEM = Principal("system", "deposits", frozenset({"bookings.write"}))


def derived_id(scope: str, key: str, operation: str) -> uuid.UUID:
    """The same id for the same caller, key and operation: a retried request reuses the
    provider's idempotency key derived from it."""
    return uuid.uuid5(NAMESPACE, f"{operation}|{scope}|{key}")


def illegal(dep, action: str) -> Problem:
    return Problem(409, "Conflict", f"a {dep['status']} deposit cannot be {action}", kind="deposit-state",
                   current_status=dep["status"])


def provider_problem(exc: PortError) -> Problem:
    if exc.status is None or exc.status >= 500 or exc.status == 429:
        return Problem(503, "Payment provider unavailable", str(exc), kind="provider-unavailable",
                       headers={"Retry-After": "5"}, code=exc.code)
    return Problem(409, "Payment provider refused", str(exc), kind="provider-refused", code=exc.code)


def deposit_rule(total_cents: int, percent: int, minimum_cents: int) -> int:
    """``percent`` of the total, rounded up to a cent, at least ``minimum_cents``, at most the total."""
    return min(total_cents, max(minimum_cents, math.ceil(total_cents * percent / 100)))


# --- access --------------------------------------------------------------------------------


async def get_deposit(conn, principal: Principal, deposit_id: uuid.UUID, *, permission: str = "payments.read",
                      for_update: bool = False) -> dict[str, Any]:
    query = sa.select(deposits).where(deposits.c.id == deposit_id)
    if for_update:
        query = query.with_for_update()
    row = await conn.fetch_one(query)
    if row is None:
        raise not_found("Deposit")
    check_owner_or(principal, row["customer_id"], permission, "Deposit")
    return dict(row)


# --- moving the state ----------------------------------------------------------------------


def _actor(principal: Principal | None) -> str:
    return principal.flag_context()["userId"] if principal else "system"


async def advance(conn, ctx, dep: dict[str, Any], status: str, *, captured: int | None = None,
                  refunded: int | None = None, reason: str | None = None, actor: str = "system",
                  fee: int | None = None) -> dict[str, Any]:
    """Move ``dep`` forward to ``status`` and publish what happened; a backwards move is ignored.
    ``fee`` is the provider's fee on the capture, published with it."""
    captured = dep["captured_cents"] if captured is None else min(max(captured, dep["captured_cents"]),
                                                                   dep["amount_cents"])
    refunded = dep["refunded_cents"] if refunded is None else min(max(refunded, dep["refunded_cents"]), captured)
    if status in CAPTURED or status == "refunded":
        status = "refunded" if refunded and refunded >= captured else "partially_refunded" if refunded else "succeeded"
    same = status == dep["status"] and captured == dep["captured_cents"] and refunded == dep["refunded_cents"]
    if same or (status != dep["status"] and status not in MOVES[dep["status"]]):
        return dep
    values: dict[str, Any] = {"status": status, "captured_cents": captured, "refunded_cents": refunded,
                              "updated_at": sa.func.now()}
    if status == "failed":
        values["failure_reason"] = reason or "payment_failed"
    if captured and not dep["captured_cents"]:
        values["succeeded_at"] = sa.func.now()
    row = dict(await conn.fetch_one(sa.update(deposits).where(deposits.c.id == dep["id"]).values(**values)
                                   .returning(deposits)))
    base = {"payment_id": str(row["id"]), "booking_id": str(row["booking_id"]),
            "customer_id": str(row["customer_id"])}
    if captured and not dep["captured_cents"]:
        await publish(conn, ctx, "payment.succeeded",
                      {**base, "amount_cents": captured, "currency": row["currency"], "fee_cents": fee or 0},
                      actor=actor)
    if refunded > dep["refunded_cents"]:
        await publish(conn, ctx, "payment.refunded",
                      {**base, "amount_cents": refunded - dep["refunded_cents"], "currency": row["currency"]},
                      actor=actor)
    if status == "failed" and dep["status"] != "failed":
        await publish(conn, ctx, "payment.failed", {**base, "reason": values["failure_reason"]}, actor=actor)
    return row


async def sync(conn, ctx, dep: dict[str, Any], intent, actor: str = "system") -> dict[str, Any]:
    """Bring ``dep`` up to the provider's PaymentIntent (forward only)."""
    if intent.status == "succeeded":
        return await advance(conn, ctx, dep, "succeeded", captured=intent.amount_cents,
                             refunded=intent.amount_refunded_cents, actor=actor, fee=intent.fee_cents)
    if intent.status in ("processing", "requires_action"):
        return await advance(conn, ctx, dep, "processing", actor=actor)
    if intent.status == "canceled":
        return await advance(conn, ctx, dep, "cancelled", actor=actor)
    if intent.status == "requires_payment_method" and intent.last_error:
        return await advance(conn, ctx, dep, "failed", reason=intent.last_error, actor=actor)
    return dep


# --- the operations ------------------------------------------------------------------------


async def _booking_for(conn, principal: Principal, booking_id: uuid.UUID) -> dict[str, Any]:
    """The booking a payment is for, locked: a customer's own, or any for staff with ``payments.write``."""
    booking = await conn.fetch_one(
        sa.select(tables.bookings).where(tables.bookings.c.id == booking_id).with_for_update())
    if booking is None or (principal.kind == "customer" and str(booking["customer_id"]) != principal.id):
        raise Problem(404, "Booking not found", "booking_id: no such booking", kind="not-found",
                      errors=[{"field": "body.booking_id", "message": "no such booking"}])
    if principal.kind != "customer" and not principal.can("payments.write"):
        raise Problem(403, "Forbidden", "missing permission payments.write", kind="forbidden",
                      permission="payments.write")
    return dict(booking)


async def create_deposit(conn, ctx, cfg, principal: Principal, booking_id: uuid.UUID, amount_cents: int | None,
                         deposit_id: uuid.UUID) -> dict[str, Any]:
    """A deposit for a booking: ``amount_cents``, or the settings' rule on the booking's stored total."""
    booking = await _booking_for(conn, principal, booking_id)
    if booking["status"] not in ("pending", "confirmed"):
        raise conflict(f"a {booking['status']} booking takes no deposit", booking_status=booking["status"])
    open_one = await conn.scalar(sa.select(deposits.c.id).where(
        deposits.c.booking_id == booking_id, deposits.c.kind == "deposit", deposits.c.status.in_(ACTIVE)))
    if open_one is not None:
        raise conflict("the booking already has a deposit in progress or paid", deposit_id=str(open_one))
    total = booking["total_cents"]
    rule = deposit_rule(total, cfg.percent, cfg.minimum_cents)
    if amount_cents is None:
        amount_cents = rule
        if amount_cents < 1:
            raise invalid("amount_cents", "the booking has no total to take a deposit from; name an amount")
    elif amount_cents > total:  # a zero-total booking takes no named amount either
        raise invalid("amount_cents", f"must not exceed the booking's total of {total} cents")
    elif principal.kind == "customer" and amount_cents < rule:
        # a customer may pay more ahead, not less; staff may agree any amount
        raise invalid("amount_cents", f"must be at least the deposit of {rule} cents")
    return await open_payment(conn, ctx, deposit_id, booking, amount_cents)


async def open_payment(conn, ctx, payment_id: uuid.UUID, booking, amount: int, *, customer_id=None,
                       metadata: dict[str, str] | None = None, **columns) -> dict[str, Any]:
    """A payment of ``booking`` awaiting its payment: its PaymentIntent at the provider (keyed by
    ``payment_id``) and its row (the booking's customer's unless ``customer_id``)."""
    currency = booking["currency"]
    try:
        intent = await ctx.ports.payments.create_intent(
            amount, currency, idempotency_key=f"deposit-{payment_id}-create",
            metadata={"deposit_id": str(payment_id), "booking_id": str(booking["id"]), **(metadata or {})})
    except PortError as exc:
        raise provider_problem(exc) from exc
    return dict(await conn.fetch_one(sa.insert(deposits).values(
        id=payment_id, booking_id=booking["id"], customer_id=customer_id or booking["customer_id"],
        amount_cents=amount, currency=currency.upper(), status="requires_payment", intent_id=intent.id,
        client_secret=intent.client_secret, **columns).returning(deposits)))


def _confirm_key(dep: dict[str, Any], payment_method: str) -> str:
    # A crashed attempt rolled updated_at back, so its retry reuses the key; a new attempt
    # after a decline (updated_at moved) gets a fresh one.
    digest = hashlib.sha256(f"{payment_method}|{dep['updated_at'].isoformat()}".encode()).hexdigest()[:16]
    return f"deposit-{dep['id']}-confirm-{digest}"


async def confirm_deposit(conn, ctx, principal: Principal, deposit_id: uuid.UUID,
                          payment_method: str) -> dict[str, Any]:
    dep = await get_deposit(conn, principal, deposit_id, permission="payments.write", for_update=True)
    if dep["status"] not in PRE_CAPTURE:
        raise illegal(dep, "confirmed")
    actor = _actor(principal)
    pay = ctx.ports.payments
    try:
        dep = await sync(conn, ctx, dep, await pay.retrieve_intent(dep["intent_id"]), actor)
        if dep["status"] not in PRE_CAPTURE:
            return dep
        intent = await pay.confirm_intent(dep["intent_id"], payment_method=payment_method,
                                          idempotency_key=_confirm_key(dep, payment_method))
    except PortError as exc:
        if exc.status != 402:
            raise provider_problem(exc) from exc
        # a decline is an outcome, kept with its reason, not an error that rolls it back
        return await advance(conn, ctx, dep, "failed", reason=exc.code or "card_declined", actor=actor)
    await conn.run(sa.update(deposits).where(deposits.c.id == dep["id"]).values(payment_method=payment_method))
    dep["payment_method"] = payment_method
    return await sync(conn, ctx, dep, intent, actor)


async def cancel_deposit(conn, ctx, principal: Principal, deposit_id: uuid.UUID) -> dict[str, Any]:
    """Cancel before capture; after capture, refund what is left (staff only)."""
    dep = await get_deposit(conn, principal, deposit_id, permission="payments.write", for_update=True)
    actor = _actor(principal)
    pay = ctx.ports.payments
    if dep["status"] in PRE_CAPTURE:
        try:
            dep = await sync(conn, ctx, dep, await pay.retrieve_intent(dep["intent_id"]), actor)
            if dep["status"] in PRE_CAPTURE:
                return await sync(conn, ctx, dep, await pay.cancel_intent(dep["intent_id"]), actor)
        except PortError as exc:
            raise provider_problem(exc) from exc
    if dep["status"] in CAPTURED:
        if principal.kind == "customer":
            raise Problem(403, "Forbidden", "a paid deposit is refunded by staff (payments.write)",
                          kind="forbidden", permission="payments.write")
        return (await refund_deposit(conn, ctx, principal, deposit_id, None, "deposit cancelled",
                                     derived_id(str(deposit_id), "cancel", "refund"), dep=dep))[0]
    if dep["status"] == "cancelled":
        return dep
    raise illegal(dep, "cancelled")


async def refund_deposit(conn, ctx, principal: Principal, deposit_id: uuid.UUID, amount_cents: int | None,
                         reason: str | None, refund_id: uuid.UUID, *, dep: dict[str, Any] | None = None,
                         actor: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Refund all that is left, or ``amount_cents`` of it; returns (deposit, refund)."""
    if dep is None:
        dep = await get_deposit(conn, principal, deposit_id, permission="payments.write", for_update=True)
        if principal.kind == "customer":
            raise Problem(403, "Forbidden", "refunds are made by staff (payments.write)", kind="forbidden",
                          permission="payments.write")
    if dep["status"] not in CAPTURED:
        raise illegal(dep, "refunded")
    left = dep["captured_cents"] - dep["refunded_cents"]
    amount = left if amount_cents is None else amount_cents
    if amount > left:
        raise Problem(409, "Refund exceeds the captured amount",
                      f"{amount} cents asked, {left} of the {dep['captured_cents']} captured remain refundable",
                      kind="refund-exceeds-captured", captured_cents=dep["captured_cents"],
                      refunded_cents=dep["refunded_cents"], refundable_cents=left,
                      errors=[{"field": "body.amount_cents", "message": f"at most {left} cents remain refundable"}])
    try:
        refund = await ctx.ports.payments.refund(dep["intent_id"], amount,
                                                 idempotency_key=f"deposit-{dep['id']}-refund-{refund_id}")
    except PortError as exc:
        raise provider_problem(exc) from exc
    row = await conn.fetch_one(pg_insert(deposit_refunds).values(
        id=refund_id, deposit_id=dep["id"], amount_cents=amount, currency=dep["currency"],
        provider_refund_id=refund.id, status=refund.status, reason=reason,
    ).returning(deposit_refunds))
    dep = await advance(conn, ctx, dep, "refunded", refunded=dep["refunded_cents"] + amount,
                        actor=actor or _actor(principal))
    return dep, dict(row)


async def refunds_of(conn, deposit_id: uuid.UUID, *, limit: int, cursor: str | None = None
                     ) -> tuple[list[dict[str, Any]], str | None]:
    return await fetch_page(conn, sa.select(deposit_refunds).where(deposit_refunds.c.deposit_id == deposit_id),
                            (deposit_refunds.c.created_at, deposit_refunds.c.id), limit=limit, cursor=cursor,
                            descending=False)


# --- the booking's standing, and paying its balance ------------------------------------------

IN_FLIGHT = ("requires_payment", "processing")
_PAYMENTS = (sa.select(deposits.c.booking_id, deposits.c.kind, deposits.c.status, deposits.c.amount_cents,
                       deposits.c.captured_cents, deposits.c.refunded_cents, deposits.c.share, deposits.c.shares)
             .where(deposits.c.booking_id == sa.func.any(sa.bindparam("ids", type_=ARRAY(UUID(as_uuid=True)))))
             .order_by(deposits.c.created_at, deposits.c.id))


def deposit_status(payments) -> tuple[str, int]:
    """The status and amount of a booking's deposit from its payments (oldest first): its latest
    deposit's; of a split bill, each share's latest, ``succeeded`` once every share's is captured,
    ``partially_paid`` while only some are."""
    kept = [p for p in payments if p["kind"] == "deposit"]
    if not kept:
        return "none", 0
    if kept[-1]["share"] is None:
        return kept[-1]["status"], kept[-1]["amount_cents"]
    latest = {p["share"]: p for p in kept if p["share"] is not None}
    paid = sum(p["status"] in CAPTURED for p in latest.values())
    status = "succeeded" if paid >= kept[-1]["shares"] else "partially_paid" if paid else kept[-1]["status"]
    return status, sum(p["amount_cents"] for p in latest.values())


def standing(booking, payments) -> dict[str, Any]:
    """The booking view's ``deposits`` field from the booking's row and its payments (oldest first)."""
    captured = refunded = 0
    for p in payments:  # one pass, no generators: a page of twenty bookings calls this twenty times
        captured += p["captured_cents"]
        refunded += p["refunded_cents"]
    status, deposit_cents = deposit_status(payments)
    due = 0 if booking["status"] == "cancelled" else max(0, booking["total_cents"] - captured)
    return {"deposit_status": status, "deposit_cents": deposit_cents, "paid_cents": captured - refunded,
            "refunded_cents": refunded, "due_cents": due, "currency": booking["currency"]}


_PAID = ("kind", "status", "amount_cents", "captured_cents", "refunded_cents", "share", "shares")
# The booking's payments (oldest first) as the core's statements of bookings answer them
# (register_fields' booking_columns): the field costs no statement of its own. NULL when
# there are none, as for most bookings of a page: a NULL costs no JSON to parse. The keys are
# written in the statement: as bound parameters, seven strings sent and typed on every read.
PAYMENTS_COLUMN = (sa.select(sa.func.json_agg(aggregate_order_by(
    sa.func.json_build_object(*(x for name in _PAID for x in (sa.literal_column(f"'{name}'"), deposits.c[name]))),
    deposits.c.created_at, deposits.c.id)))
    .where(deposits.c.booking_id == sa.literal_column("bookings.id")).scalar_subquery().label("deposits.payments"))


async def booking_fields(ctx, rows) -> list[dict[str, Any] | BookingPayments]:
    """Every booking's standing: from its row's payments column, or (rows that lack it, from a
    plugin's own call of the core's service) one query for all of them."""
    paid = [row["deposits.payments"] or [] if "deposits.payments" in row else None for row in rows]
    missing = [row["id"] for row, payments in zip(rows, paid) if payments is None]
    if missing:
        fetched: dict[Any, list] = {booking_id: [] for booking_id in missing}
        async with ctx.db.read() as conn:
            for p in await conn.fetch_all(_PAYMENTS, {"ids": missing}):
                fetched[p["booking_id"]].append(p)
        paid = [fetched[row["id"]] if payments is None else payments for row, payments in zip(rows, paid)]
    return [standing(row, payments) if payments else
            _unpaid(0 if row["status"] == "cancelled" else max(0, row["total_cents"]), row["currency"])
            for row, payments in zip(rows, paid)]


@functools.lru_cache(maxsize=1024)
def _unpaid(due_cents: int, currency: str) -> BookingPayments:
    # Most bookings of a page have no payment: one instance per amount due, shared (views only
    # read it), so the page validates none of their fields again.
    return BookingPayments(deposit_status="none", deposit_cents=0, paid_cents=0, refunded_cents=0,
                           due_cents=due_cents, currency=currency)


async def pay_balance(conn, ctx, principal: Principal, booking_id: uuid.UUID, payment_method: str,
                      amount_cents: int | None, payment_id: uuid.UUID) -> dict[str, Any]:
    """Pay what the booking still owes, or ``amount_cents`` of it, as one PaymentIntent confirmed at
    once; payments awaiting their capture count as paid, so two never pay the same cents."""
    booking = await _booking_for(conn, principal, booking_id)
    if booking["status"] == "cancelled":
        raise conflict("a cancelled booking owes nothing", booking_status=booking["status"])
    payments = [dict(p) for p in await conn.fetch_all(_PAYMENTS, {"ids": [booking_id]})]
    pending = sum(p["amount_cents"] for p in payments if p["status"] in IN_FLIGHT)
    due = standing(booking, payments)["due_cents"] - pending
    if due <= 0:
        raise Problem(409, "Nothing is due", f"the booking's {booking['total_cents']} cents are paid"
                      + (f" or awaiting a payment of {pending}" if pending else ""), kind="nothing-due",
                      due_cents=0, pending_cents=pending)
    amount = due if amount_cents is None else amount_cents
    if amount > due:
        raise invalid("amount_cents", f"must not exceed the {due} cents due")
    await open_payment(conn, ctx, payment_id, booking, amount, metadata={"kind": "balance"}, kind="balance")
    return await confirm_deposit(conn, ctx, principal, payment_id, payment_method)


async def pay_share(conn, ctx, cfg, principal: Principal, booking_id: uuid.UUID, *, share: str, shares: int,
                    payer_id: uuid.UUID, owed_cents: int, amount_cents: int | None, payment_method: str,
                    payment_id: uuid.UUID) -> dict[str, Any]:
    """One payer's deposit of a booking whose bill is split into ``shares`` shares, as one
    PaymentIntent confirmed at once: the settings' rule on what the share owes, or
    ``amount_cents`` (never above it). The splitting plugin says who pays which share; one id
    (from the caller's key) pays once."""
    if (seen := await conn.fetch_one(sa.select(deposits).where(deposits.c.id == payment_id))) is not None:
        return dict(seen)
    booking = await conn.fetch_one(
        sa.select(tables.bookings).where(tables.bookings.c.id == booking_id).with_for_update())
    if booking is None:
        raise not_found("Booking")
    if booking["status"] not in ("pending", "confirmed"):
        raise conflict(f"a {booking['status']} booking takes no deposit", booking_status=booking["status"])
    open_one = await conn.scalar(sa.select(deposits.c.id).where(
        deposits.c.booking_id == booking_id, deposits.c.kind == "deposit", deposits.c.status.in_(ACTIVE),
        sa.or_(deposits.c.share.is_(None), deposits.c.share == share)))
    if open_one is not None:
        raise conflict("this share's deposit is in progress or paid", deposit_id=str(open_one))
    if owed_cents < 1:
        raise conflict("this share owes nothing", owed_cents=owed_cents)
    rule = deposit_rule(owed_cents, cfg.percent, cfg.minimum_cents)
    amount = rule if amount_cents is None else amount_cents
    if amount > owed_cents:
        raise invalid("amount_cents", f"must not exceed the {owed_cents} cents this share owes")
    if principal.kind == "customer" and amount < rule:
        raise invalid("amount_cents", f"must be at least the share's deposit of {rule} cents")
    await open_payment(conn, ctx, payment_id, booking, amount, customer_id=payer_id, metadata={"share": share},
                       share=share, shares=shares)
    return await confirm_deposit(conn, ctx, principal, payment_id, payment_method)


class Operations:
    """Refund, capture and a split bill's deposits for other plugins (the ``DepositOperations`` service)."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx

    async def refund(self, conn, principal, deposit_id, *, amount_cents, reason, key):
        refund_id = derived_id(str(deposit_id), key, "refund")
        seen = await conn.fetch_one(sa.select(deposit_refunds).where(deposit_refunds.c.id == refund_id))
        if seen is not None:  # this key refunded already
            return dict(seen)
        return (await refund_deposit(conn, self.ctx, principal, deposit_id, amount_cents, reason, refund_id))[1]

    async def capture(self, conn, principal, deposit_id, *, payment_method):
        dep = await get_deposit(conn, principal, deposit_id, permission="payments.write")
        if dep["status"] in ("processing", *CAPTURED, "refunded"):
            return dep
        return await confirm_deposit(conn, self.ctx, principal, deposit_id, payment_method)

    async def paid_cents(self, conn, booking_id):
        return await conn.scalar(sa.select(sa.func.coalesce(sa.func.sum(
            deposits.c.captured_cents - deposits.c.refunded_cents), 0)).where(deposits.c.booking_id == booking_id))

    async def pay_share(self, conn, principal, booking_id, *, share, shares, payer_id, owed_cents, amount_cents,
                        payment_method, key):
        return await pay_share(
            conn, self.ctx, self.ctx.plugins.get("deposits").settings, principal, booking_id, share=share,
            shares=shares, payer_id=payer_id, owed_cents=owed_cents, amount_cents=amount_cents,
            payment_method=payment_method, payment_id=derived_id(str(booking_id), key, f"share:{share}"))

    async def shares(self, conn, booking_id):
        rows = [dict(r) for r in await conn.fetch_all(
            sa.select(deposits).where(deposits.c.booking_id == booking_id, deposits.c.share.is_not(None))
            .order_by(deposits.c.created_at, deposits.c.id))]
        return {"deposit_status": deposit_status(rows)[0], "shares": {r["share"]: r for r in rows}}


# --- listing -------------------------------------------------------------------------------






async def list_deposits(conn, principal: Principal, *, booking_id=None, customer_id=None, status=None,
                        created_from=None, created_to=None, cursor=None, limit=20) -> tuple[list[dict], str | None]:
    """Newest first, keyset-paginated on (created_at, id); customers see their own."""
    cond = []
    if principal.kind == "customer":
        if customer_id is not None and str(customer_id) != principal.id:
            raise Problem(403, "Forbidden", "customers list their own deposits", kind="forbidden",
                          permission="payments.read")
        cond.append(deposits.c.customer_id == bookings.own_id(principal))
    elif not principal.can("payments.read"):
        raise Problem(403, "Forbidden", "missing permission payments.read", kind="forbidden",
                      permission="payments.read")
    elif customer_id is not None:
        cond.append(deposits.c.customer_id == customer_id)
    if booking_id is not None:
        cond.append(deposits.c.booking_id == booking_id)
    if status:
        cond.append(deposits.c.status == status)
    if created_from:
        cond.append(deposits.c.created_at >= created_from)
    if created_to:
        cond.append(deposits.c.created_at < created_to)
    return await fetch_page(conn, sa.select(deposits).where(*cond), (deposits.c.created_at, deposits.c.id),
                            limit=limit, cursor=cursor)


# --- webhooks ------------------------------------------------------------------------------


def _intent_of(type_: str, obj: dict[str, Any]) -> str | None:
    if type_.startswith("payment_intent."):
        return obj.get("id")
    return obj.get("payment_intent")


async def _fee_of(ctx, dep: dict[str, Any]) -> int | None:
    """The fee of a capture a webhook announced: an event's intent names its charge without the
    balance transaction, so the worker asks the provider once (never a request)."""
    try:
        return (await ctx.ports.payments.retrieve_intent(dep["intent_id"])).fee_cents
    except PortError as exc:
        log.warning("the fee of deposit %s is unknown: %s", dep["id"], exc)
        return None


async def on_stripe_event(conn, event, ctx) -> None:
    """Apply a Stripe event the core's webhook hub received (once per Stripe event id):
    the deposit moves forward only, so events arriving out of order change nothing back."""
    type_ = event["payload"]["type"]
    obj = (await webhooks.data_of(conn, ctx, event)).get("object") or {}
    intent_id = _intent_of(type_, obj)
    dep = None
    if intent_id:
        dep = await conn.fetch_one(sa.select(deposits).where(deposits.c.intent_id == intent_id).with_for_update())
    # the customer, so the flag's sticky rollout treats the provider's events as theirs
    actor = str(dep["customer_id"]) if dep else "system"
    if type_ == "charge.dispute.created":
        await conn.run(pg_insert(payment_disputes).values(
            id=uuid.uuid4(), provider_dispute_id=str(obj.get("id")), deposit_id=dep["id"] if dep else None,
            intent_id=intent_id, charge_id=obj.get("charge"), amount_cents=int(obj.get("amount") or 0),
            currency=str(obj.get("currency") or (dep or {}).get("currency") or "usd").upper()[:3],
            reason=obj.get("reason"), status=obj.get("status"), raw=obj,
        ).on_conflict_do_nothing())
    elif dep is None:
        return
    elif type_ == "payment_intent.succeeded":
        await advance(conn, ctx, dep, "succeeded",
                      captured=int(obj.get("amount_received") or obj.get("amount") or dep["amount_cents"]), actor=actor,
                      fee=await _fee_of(ctx, dep) if dep["captured_cents"] == 0 else None)
    elif type_ == "payment_intent.processing":
        await advance(conn, ctx, dep, "processing", actor=actor)
    elif type_ == "payment_intent.payment_failed":
        error = obj.get("last_payment_error") or {}
        await advance(conn, ctx, dep, "failed", reason=error.get("code") or "payment_failed", actor=actor)
    elif type_ == "payment_intent.canceled":
        await advance(conn, ctx, dep, "cancelled", actor=actor)
    elif type_ == "charge.refunded":
        captured = int(obj.get("amount_captured") or obj.get("amount") or dep["amount_cents"])
        await advance(conn, ctx, dep, "refunded", captured=captured, refunded=int(obj.get("amount_refunded") or 0),
                      actor=actor)


# --- the booking, and reconciliation ---------------------------------------------------------


async def on_payment_succeeded(conn, event, ctx) -> None:
    """A paid deposit (not a share of a split bill) confirms its pending booking (through the core's booking transition); a
    payment captured after its booking was cancelled (it was processing then) is refunded as the
    cancellation's others were."""
    booking_id = uuid.UUID(str(event["payload"]["booking_id"]))
    status = await conn.scalar(sa.select(tables.bookings.c.status).where(tables.bookings.c.id == booking_id))
    if status == "pending" and await conn.scalar(sa.select(deposits.c.share).where(
            deposits.c.id == uuid.UUID(str(event["payload"]["payment_id"])))) is None:
        # one share of a split bill does not confirm its booking: the plugin that split it does
        await bookings.transition(conn, ctx, SYSTEM, booking_id, "confirmed")
    elif status == "cancelled":
        await refund_cancelled(conn, ctx, booking_id)


# Who refunds a cancelled booking's payments.
REFUNDER = Principal("system", "deposits", frozenset({"payments.write"}))


async def on_booking_cancelled(conn, event, ctx) -> None:
    await refund_cancelled(conn, ctx, uuid.UUID(str(event["payload"]["booking_id"])))


async def refund_cancelled(conn, ctx, booking_id: uuid.UUID) -> None:
    """A cancelled booking's payments: one awaiting payment is cancelled at the provider, a captured one
    refunded (``cancel_refund_percent`` of what is left) on the staff refund's path, once per payment
    however often it is asked (its refund's id is derived from the payment); one still processing
    is refunded when it succeeds (``on_payment_succeeded``)."""
    percent = ctx.plugins.get("deposits").settings.cancel_refund_percent
    pay = ctx.ports.payments
    for deposit_id in await conn.scalars(sa.select(deposits.c.id).where(deposits.c.booking_id == booking_id)
                                         .order_by(deposits.c.created_at, deposits.c.id)):
        dep = await get_deposit(conn, REFUNDER, deposit_id, permission="payments.write", for_update=True)
        actor = str(dep["customer_id"])
        refund_id = derived_id(str(deposit_id), "booking.cancelled", "refund")
        if await conn.scalar(sa.select(deposit_refunds.c.id).where(deposit_refunds.c.id == refund_id)):
            continue  # a redelivery: this payment was refunded for the cancellation already
        try:  # a provider failure raises, so the delivery is retried
            if dep["status"] in PRE_CAPTURE or dep["status"] == "processing":
                dep = await sync(conn, ctx, dep, await pay.retrieve_intent(dep["intent_id"]), actor)
            if dep["status"] in PRE_CAPTURE:
                await sync(conn, ctx, dep, await pay.cancel_intent(dep["intent_id"]), actor)
                continue
        except PortError as exc:
            raise provider_problem(exc) from exc
        amount = (dep["captured_cents"] - dep["refunded_cents"]) * percent // 100
        if dep["status"] in CAPTURED and amount > 0:
            await refund_deposit(conn, ctx, REFUNDER, deposit_id, amount, "booking cancelled", refund_id, dep=dep,
                                 actor=actor)


async def reconcile(ctx, cfg, *, now: datetime | None = None) -> int:
    """Bring deposits left processing or unconfirmed longer than ``stale_minutes`` up to the
    provider's state; returns how many changed."""
    cutoff = (now or utcnow()) - timedelta(minutes=cfg.stale_minutes)
    async with ctx.db.read() as conn:
        ids = await conn.scalars(sa.select(deposits.c.id).where(
            deposits.c.status.in_(("requires_payment", "processing")), deposits.c.updated_at < cutoff)
            .order_by(deposits.c.updated_at).limit(cfg.reconcile_batch))
    changed = 0
    for deposit_id in ids:
        try:
            async with ctx.db.transaction() as conn:
                row = await conn.fetch_one(sa.select(deposits).where(
                    deposits.c.id == deposit_id, deposits.c.status.in_(("requires_payment", "processing")))
                    .with_for_update(skip_locked=True))
                if row is None:
                    continue
                dep = dict(row)
                after = await sync(conn, ctx, dep, await ctx.ports.payments.retrieve_intent(dep["intent_id"]),
                                   str(dep["customer_id"]))
                if after is not dep:
                    changed += 1
                else:
                    # looked at: wait another stale period before asking the provider again
                    await conn.run(sa.update(deposits).where(deposits.c.id == deposit_id)
                                       .values(updated_at=sa.func.now()))
        except PortError as exc:
            log.warning("reconciling deposit %s failed: %s", deposit_id, exc)
    return changed


async def export_sections(conn, ctx, customer_id: uuid.UUID) -> dict[str, list[dict[str, Any]]]:
    """The customer's payments (deposits) and their refunds, for their data export; the
    provider's client secret is a credential, not the customer's data."""
    paid = await conn.fetch_all(sa.select(*[c for c in deposits.c if c.name != "client_secret"])
                                .where(deposits.c.customer_id == customer_id).order_by(deposits.c.created_at))
    back = await conn.fetch_all(sa.select(deposit_refunds).join(deposits, deposits.c.id == deposit_refunds.c.deposit_id)
                                .where(deposits.c.customer_id == customer_id).order_by(deposit_refunds.c.created_at))
    return {"deposits.payments": [dict(r) for r in paid], "deposits.refunds": [dict(r) for r in back]}


async def merge_customer(conn, ctx, source_id: uuid.UUID, target_id: uuid.UUID) -> None:
    """A merge: the duplicate's payments belong to the customer kept."""
    await conn.run(sa.update(deposits).where(deposits.c.customer_id == source_id).values(customer_id=target_id))
