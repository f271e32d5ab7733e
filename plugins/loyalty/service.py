"""The points ledger: every change is one row of ``loyalty_transactions`` written under a lock
on the customer's account row, so the account's balance is always the sum of its ledger.

Rules, decided here (docs/loyalty.md describes them for operators):

* Earning: ``cents_per_point`` paid earns one point, times the tier's multiplier (the tier
  before this payment). A payment earns once (``source_key`` ``payment:<id>`` is unique). A
  booking's payments earn when it is completed, on what they stand at then, once
  (``payment:booking:<id>``); a payment after the completion earns only the cents the
  booking's earlier earnings did not cover.
* Points that add to the balance are lots with ``remaining`` and ``expires_at`` (earned + 12
  months); spending takes from the lots that expire first (FIFO), expiry removes what is left.
* A refund takes back the points its share of the payment earned (cumulative, rounded down),
  first from that payment's lot, then FIFO. Points already spent cannot be taken from the
  balance, which never goes below zero: the shortfall becomes ``points_debt`` and is paid from
  the next points earned. Lifetime points (and so the tier) drop by the full amount.
* A redemption remembers its lots; cancelling the booking gives the points back to the same
  lots with their original expiry (already past: they expire at once).

Every function takes ``now`` so tests can move the clock.
"""
from __future__ import annotations

import calendar
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert

from myhibachi.core import (DepositOperations, check_owner_or, claim_due, conflict, fetch_page, invalid, not_found,
                            tables, utcnow)
from myhibachi.plugins.loyalty import LoyaltySettings
from myhibachi.plugins.loyalty.models import loyalty_accounts as accounts
from myhibachi.plugins.loyalty.models import loyalty_transactions as ledger


def settings_of(ctx) -> LoyaltySettings:
    plugin = ctx.plugins.get("loyalty") if ctx is not None else None
    return getattr(plugin, "settings", None) or LoyaltySettings()


def add_months(at: datetime, months: int) -> datetime:
    month = at.month - 1 + months
    year, month = at.year + month // 12, month % 12 + 1
    return at.replace(year=year, month=month, day=min(at.day, calendar.monthrange(year, month)[1]))


# --- the account and its ledger -------------------------------------------------------------


_ACCOUNT = sa.select(accounts).where(accounts.c.customer_id == sa.bindparam("customer_id"))
_CUSTOMER = sa.select(tables.customers.c.id).where(tables.customers.c.id == sa.bindparam("customer_id"))
_TIER = sa.select(accounts.c.tier).where(accounts.c.customer_id == sa.bindparam("customer_id"))


async def tier_of(conn, customer_id) -> str | None:
    """The ``customer_tier`` hook's answer: the account's tier (None without an account)."""
    return await conn.scalar(_TIER, {"customer_id": customer_id})
_NEXT_EXPIRY = (sa.select(ledger.c.expires_at, sa.func.sum(ledger.c.remaining).label("points"))
                .where(ledger.c.account_id == sa.bindparam("account_id"), ledger.c.lot_status == "open")
                .group_by(ledger.c.expires_at).order_by(ledger.c.expires_at).limit(1))


async def find_account(conn, customer_id: uuid.UUID) -> dict[str, Any] | None:
    return await conn.fetch_one(_ACCOUNT, {"customer_id": customer_id})


class Book:
    """One customer's account, locked for the caller's transaction, and the rows it appends."""

    def __init__(self, conn, settings: LoyaltySettings, account: dict[str, Any], now: datetime) -> None:
        self.conn, self.s, self.account, self.now = conn, settings, account, now

    @classmethod
    async def open(cls, conn, ctx, customer_id: uuid.UUID, now: datetime) -> "Book":
        """Lock (creating it if need be) the customer's account, then expire its due lots."""
        await conn.run(pg_insert(accounts).values(id=uuid.uuid4(), customer_id=customer_id)
                           .on_conflict_do_nothing(index_elements=["customer_id"]))
        row = await conn.fetch_one(sa.select(accounts).where(accounts.c.customer_id == customer_id)
                                  .with_for_update())
        book = cls(conn, settings_of(ctx), dict(row), now)
        if await book.expire_due():
            await book.save()  # so a caller that stops early still leaves the account equal to its ledger
        return book

    @property
    def balance(self) -> int:
        return self.account["points_balance"]

    async def append(self, kind: str, points: int, *, lot: bool = False, **values: Any) -> dict[str, Any]:
        balance = self.balance + points
        if balance < 0:
            raise conflict(f"only {self.balance} points are available", points_balance=self.balance)
        row = {"id": uuid.uuid4(), "account_id": self.account["id"], "transaction_type": kind, "points": points,
               "balance_after": balance, "created_at": self.now, **values}
        if lot:
            row.update(remaining=points, lot_status="open",
                       expires_at=add_months(self.now, self.s.expiry_months))
        stored = await self.conn.fetch_one(sa.insert(ledger).values(**row).returning(ledger))
        self.account["points_balance"] = balance
        return dict(stored)

    async def take(self, points: int, first_lot: uuid.UUID | None = None) -> list[list]:
        """Take ``points`` from open lots, soonest expiry first (``first_lot`` before all)."""
        order = [ledger.c.expires_at, ledger.c.seq]
        if first_lot is not None:
            order.insert(0, sa.case((ledger.c.id == first_lot, 0), else_=1))
        lots = [tuple(r.values()) for r in await self.conn.fetch_all(
            sa.select(ledger.c.id, ledger.c.remaining)
            .where(ledger.c.account_id == self.account["id"], ledger.c.lot_status == "open")
            .order_by(*order).with_for_update()
        )]
        taken, left = [], points
        for lot_id, remaining in lots:
            if left == 0:
                break
            n = min(left, remaining)
            await self.conn.run(sa.update(ledger).where(ledger.c.id == lot_id).values(
                remaining=remaining - n, lot_status="open" if remaining > n else "spent"))
            taken.append([str(lot_id), n])
            left -= n
        if left:
            raise RuntimeError(f"account {self.account['id']}: lots hold {points - left} of {points} points")
        return taken

    async def expire_due(self, *, skip_locked: bool = False) -> int:
        lots = [tuple(r.values()) for r in await self.conn.fetch_all(
            sa.select(ledger.c.id, ledger.c.remaining)
            .where(ledger.c.account_id == self.account["id"], ledger.c.lot_status == "open",
                   ledger.c.expires_at <= self.now)
            .order_by(ledger.c.expires_at, ledger.c.seq).with_for_update(skip_locked=skip_locked)
        )]
        for lot_id, remaining in lots:
            await self.conn.run(sa.update(ledger).where(ledger.c.id == lot_id)
                                    .values(remaining=0, lot_status="expired"))
            await self.append("expire", -remaining, description="points expired", lots=[[str(lot_id), remaining]])
        return len(lots)

    async def add_lifetime(self, points: int) -> None:
        self.account["lifetime_points"] = max(0, self.account["lifetime_points"] + points)
        self.account["tier"] = self.s.tier_of(self.account["lifetime_points"])

    async def settle_debt(self) -> None:
        paid = min(self.account["points_debt"], self.balance)
        if paid:
            lots = await self.take(paid)
            await self.append("refund", -paid, debt_points=-paid, lots=lots,
                              description=f"{paid} points settle what an earlier refund could not take back")
            self.account["points_debt"] -= paid

    async def save(self) -> dict[str, Any]:
        a = self.account
        await self.conn.run(sa.update(accounts).where(accounts.c.id == a["id"]).values(
            points_balance=a["points_balance"], lifetime_points=a["lifetime_points"], points_debt=a["points_debt"],
            tier=a["tier"], updated_at=self.now))
        return a


async def _seen(conn, source_key: str) -> bool:
    return await conn.fetch_one(sa.select(ledger.c.id).where(ledger.c.source_key == source_key)) is not None


# --- earning and refunds ------------------------------------------------------------------------


_EARNED_ON_BOOKING = sa.select(sa.func.coalesce(sa.func.sum(ledger.c.amount_cents), 0)).where(
    ledger.c.booking_id == sa.bindparam("booking_id"), ledger.c.transaction_type == "earn")


async def earn_for_payment(conn, ctx, customer_id: uuid.UUID, payment_id: str, amount_cents: int, *,
                           booking_id: uuid.UUID | None = None, now: datetime | None = None
                           ) -> dict[str, Any] | None:
    """Credit the points a payment earns; a payment seen before earns nothing more.

    With ``booking_id``, ``amount_cents`` is what the booking's payments stand at, and the points
    are earned on the part of it that the booking's earlier earnings did not cover (read under
    the account's lock): its completion and a payment after it never earn on the same cents."""
    key = f"payment:{payment_id}"
    if amount_cents <= 0 or await _seen(conn, key):
        return None
    book = await Book.open(conn, ctx, customer_id, now or utcnow())
    if await _seen(conn, key):  # a concurrent delivery committed first
        return None
    if booking_id is not None:
        amount_cents -= int(await conn.scalar(_EARNED_ON_BOOKING, {"booking_id": booking_id}))
        if amount_cents <= 0:
            await book.save()
            return None
    s = book.s
    points = amount_cents // s.cents_per_point * s.percent_of(book.account["tier"]) // 100
    row = None
    if points > 0:
        row = await book.append("earn", points, lot=True, source_key=key, payment_id=payment_id,
                                amount_cents=amount_cents, booking_id=booking_id,
                                description=f"earned on a payment of {amount_cents / 100:.2f}")
        await book.add_lifetime(points)
        await book.settle_debt()
    await book.save()
    return row


async def reverse_for_refund(conn, ctx, customer_id: uuid.UUID, payment_id: str, amount_cents: int,
                             refund_key: str, *, now: datetime | None = None) -> dict[str, Any] | None:
    """Take back the points earned on the refunded part of a payment (once per refund)."""
    key = f"refund:{refund_key}"
    if amount_cents <= 0 or await _seen(conn, key):
        return None
    book = await Book.open(conn, ctx, customer_id, now or utcnow())
    if await _seen(conn, key):
        return None
    earned = await conn.fetch_one(sa.select(ledger).where(ledger.c.source_key == f"payment:{payment_id}",
                                                         ledger.c.account_id == book.account["id"])
                                 )
    if earned is None:
        return None
    before = tuple((await conn.fetch_one(
        sa.select(sa.func.coalesce(sa.func.sum(ledger.c.amount_cents), 0).label("cents"),
                  sa.func.coalesce(sa.func.sum(ledger.c.debt_points - ledger.c.points), 0).label("points"))
        .where(ledger.c.payment_id == payment_id, ledger.c.transaction_type == "refund",
               ledger.c.account_id == book.account["id"])
    )).values())
    refunded = min(int(before[0]) + amount_cents, earned["amount_cents"])
    owed = earned["points"] * refunded // earned["amount_cents"] - int(before[1])
    taken = min(owed, book.balance)
    lots = await book.take(taken, first_lot=earned["id"]) if taken else []
    row = await book.append("refund", -taken, source_key=key, payment_id=payment_id, amount_cents=amount_cents,
                            debt_points=owed - taken, lots=lots,
                            description=f"refund of {amount_cents / 100:.2f} takes back {owed} points"
                                        + (f" ({owed - taken} owed)" if owed > taken else ""))
    book.account["points_debt"] += owed - taken
    await book.add_lifetime(-owed)
    await book.save()
    return row


# --- redemptions ---------------------------------------------------------------------------------


def check_points(settings: LoyaltySettings, points: Any, field: str = "loyalty_points") -> int:
    if isinstance(points, bool) or not isinstance(points, int) or points <= 0 or points % settings.points_per_reward:
        raise invalid(field, f"must be a positive multiple of {settings.points_per_reward}")
    return points


def discount_cents(settings: LoyaltySettings, points: int) -> int:
    return points // settings.points_per_reward * settings.reward_cents


_REDEMPTION = sa.select(ledger).where(ledger.c.source_key == sa.func.any(sa.bindparam("keys", type_=ARRAY(sa.Text))))


async def redemption_of(conn, booking_id: uuid.UUID | str) -> dict[str, Any] | None:
    """The live redemption for a booking (None once the booking's cancellation gave it back)."""
    rows = await conn.fetch_all(_REDEMPTION, {"keys": [f"redeem:booking:{booking_id}",
                                                        f"unredeem:booking:{booking_id}"]})
    if len(rows) != 1 or rows[0]["transaction_type"] != "redeem":
        return None
    return rows[0]


async def redeem_for_booking(conn, ctx, customer_id: uuid.UUID, booking_id: uuid.UUID, points: int, *,
                             now: datetime | None = None) -> dict[str, Any]:
    """Debit ``points`` for a booking's discount; 409 when the balance does not cover them."""
    book = await Book.open(conn, ctx, customer_id, now or utcnow())
    check_points(book.s, points)
    if await _seen(conn, f"redeem:booking:{booking_id}"):
        raise conflict("points were already redeemed for this booking")
    if points > book.balance:
        raise conflict(f"only {book.balance} points are available", points_balance=book.balance)
    lots = await book.take(points)
    row = await book.append("redeem", -points, source_key=f"redeem:booking:{booking_id}", booking_id=booking_id,
                            lots=lots, description=f"{discount_cents(book.s, points) / 100:.2f} off a booking")
    await book.save()
    return row


async def give_back_for_booking(conn, ctx, booking_id: uuid.UUID, *, why: str = "cancelled",
                                now: datetime | None = None) -> dict[str, Any] | None:
    """A cancelled (or fully refunded) booking's points go back to the lots they came from (once)."""
    found = await redemption_of(conn, booking_id)
    if found is None:
        return None
    account = await conn.scalar(sa.select(accounts.c.customer_id).where(accounts.c.id == found["account_id"]))
    book = await Book.open(conn, ctx, account, now or utcnow())
    if await _seen(conn, f"unredeem:booking:{booking_id}"):
        return None
    for lot_id, n in found["lots"] or []:
        await conn.run(sa.update(ledger).where(ledger.c.id == uuid.UUID(lot_id)).values(
            remaining=ledger.c.remaining + n, lot_status="open"))
    row = await book.append("unredeem", -found["points"], source_key=f"unredeem:booking:{booking_id}",
                            booking_id=booking_id, lots=found["lots"],
                            description=f"the booking was {why}: points given back")
    await book.expire_due()
    await book.save()
    return row


# --- staff adjustments ---------------------------------------------------------------------------


async def adjust(conn, ctx, customer_id: uuid.UUID, points: int, reason: str, *, actor: str | None,
                 now: datetime | None = None) -> dict[str, Any]:
    """A staff correction: positive points are a new lot (and count as lifetime), negative ones spend."""
    book = await Book.open(conn, ctx, customer_id, now or utcnow())
    if points > 0:
        row = await book.append("adjustment", points, lot=True, description=reason, actor=actor)
        await book.add_lifetime(points)
        await book.settle_debt()
    else:
        if -points > book.balance:
            raise conflict(f"only {book.balance} points are available", points_balance=book.balance)
        lots = await book.take(-points)
        row = await book.append("adjustment", points, description=reason, actor=actor, lots=lots)
    await book.save()
    return row


# --- expiry (the worker's poller) ------------------------------------------------------------------


async def expire_due(ctx, *, now: datetime | None = None, limit: int | None = None) -> int:
    """Expire one batch of due lots; returns how many lots were expired.

    Lots are claimed with SKIP LOCKED and their accounts locked with SKIP LOCKED too: an
    account busy in a request is left for the next round (the request expires its own due
    lots first), so the poller never waits on anyone and never deadlocks.
    """
    now = now or utcnow()
    async with ctx.db.transaction() as conn:
        claimed = await claim_due(conn, ledger, due_column="expires_at", status_column="lot_status",
                                  pending="open", limit=limit or settings_of(ctx).batch_size, now=now)
        ids = sorted({lot["account_id"] for lot in claimed})
        if not ids:
            return 0
        rows = await conn.fetch_all(sa.select(accounts).where(accounts.c.id.in_(ids)).order_by(accounts.c.id)
                                   .with_for_update(skip_locked=True))
        expired = 0
        for row in rows:
            book = Book(conn, settings_of(ctx), dict(row), now)
            expired += await book.expire_due(skip_locked=True)
            await book.save()
        return expired


# --- reading -------------------------------------------------------------------------------------


async def customer_for(conn, ctx, customer_id: uuid.UUID, principal, permission: str) -> None:
    """Refuse callers who may not see this customer's points: other customers get 404, staff
    without ``permission`` 403; an unknown customer is 404."""
    check_owner_or(principal, customer_id, permission, "Customer")
    if await conn.fetch_one(_CUSTOMER, {"customer_id": customer_id}) is None:
        raise not_found("Customer")


# The customer view's field, read by the core with every customer it answers (register_fields):
# one subquery for both values (one index lookup, not one per value); a customer without an
# account reads as a new one's.
CUSTOMER_COLUMNS = (sa.func.coalesce(
    sa.select(sa.func.json_build_object(sa.literal_column("'points_balance'"), accounts.c.points_balance,
                                        sa.literal_column("'tier'"), accounts.c.tier))
    .where(accounts.c.customer_id == tables.customers.c.id).scalar_subquery(),
    sa.literal_column("""'{"points_balance": 0, "tier": "bronze"}'::json""")).label("loyalty.account"),)


def points_of(principal, customers) -> list[dict[str, Any] | None]:
    """The balance and tier of each customer, from the columns read with it; None where
    ``principal`` is neither that customer nor staff with ``loyalty.read``."""
    def shown(customer) -> bool:
        if principal.kind == "customer":
            return str(customer["id"]) == principal.id
        return principal.can("loyalty.read")

    return [c["loyalty.account"] if shown(c) else None for c in customers]


async def summary(conn, ctx, customer_id: uuid.UUID, *, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    s = settings_of(ctx)
    account = await find_account(conn, customer_id) or {
        "customer_id": customer_id, "points_balance": 0, "lifetime_points": 0, "points_debt": 0, "tier": "bronze"}
    nxt = None
    if account.get("id"):
        nxt = await conn.fetch_one(_NEXT_EXPIRY, {"account_id": account["id"]})
    thresholds = {"silver": s.silver_points, "gold": s.gold_points, "platinum": s.platinum_points}
    following = next((t for t in ("silver", "gold", "platinum") if account["lifetime_points"] < thresholds[t]), None)
    return {
        "customer_id": customer_id,
        "points_balance": account["points_balance"],
        "lifetime_points": account["lifetime_points"],
        "points_debt": account["points_debt"],
        "tier": account["tier"],
        "earn_multiplier_percent": s.percent_of(account["tier"]),
        "next_tier": following,
        "points_to_next_tier": thresholds[following] - account["lifetime_points"] if following else None,
        "redeemable_points": account["points_balance"] - account["points_balance"] % s.points_per_reward,
        "redeemable_value_cents": discount_cents(s, account["points_balance"]),
        "next_expiry_at": nxt["expires_at"] if nxt else None,
        "next_expiry_points": int(nxt["points"]) if nxt else 0,
    }


async def history(conn, customer_id: uuid.UUID, *, limit: int = 50,
                  cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first (ledger order)."""
    query = (sa.select(ledger).join(accounts, accounts.c.id == ledger.c.account_id)
             .where(accounts.c.customer_id == customer_id))
    return await fetch_page(conn, query, (ledger.c.seq,), limit=limit, cursor=cursor)


async def verify(conn) -> dict[str, Any]:
    """Every account's balance against its ledger, its open lots and its last ``balance_after``."""
    sums = (sa.select(ledger.c.account_id,
                      sa.func.sum(ledger.c.points).label("ledger"),
                      sa.func.sum(sa.case((ledger.c.lot_status == "open", ledger.c.remaining), else_=0)).label("lots"),
                      sa.func.sum(ledger.c.debt_points).label("debt"),
                      sa.func.max(ledger.c.seq).label("last"))
            .group_by(ledger.c.account_id).subquery())
    last = ledger.alias("last")
    rows = await conn.fetch_all(
        sa.select(accounts.c.id, accounts.c.customer_id, accounts.c.points_balance, accounts.c.points_debt,
                  sums.c.ledger, sums.c.lots, sums.c.debt, last.c.balance_after)
        .select_from(accounts.outerjoin(sums, sums.c.account_id == accounts.c.id)
                     .outerjoin(last, last.c.seq == sums.c.last))
    )
    bad = []
    for r in rows:
        expected = {"ledger": int(r["ledger"] or 0), "open_lots": int(r["lots"] or 0),
                    "last_balance_after": r["balance_after"] if r["balance_after"] is not None else 0}
        wrong = {k: v for k, v in expected.items() if v != r["points_balance"]}
        if int(r["debt"] or 0) != r["points_debt"]:
            wrong["debt"] = int(r["debt"] or 0)
        if wrong:
            bad.append({"account_id": str(r["id"]), "customer_id": str(r["customer_id"]),
                        "points_balance": r["points_balance"], "points_debt": r["points_debt"], **wrong})
    return {"accounts": len(rows), "mismatches": bad}


# --- event handlers ------------------------------------------------------------------------------


async def _known(conn, p: dict[str, Any]) -> bool:
    # A payment without a customer of ours earns nothing (retrying would never help).
    try:
        customer_id = uuid.UUID(str(p.get("customer_id")))
    except ValueError:
        return False
    found = await conn.fetch_one(_CUSTOMER, {"customer_id": customer_id})
    return found is not None and bool(p.get("payment_id"))


_BOOKING = sa.select(tables.bookings).where(tables.bookings.c.id == sa.bindparam("booking_id"))


async def _booking_of(conn, p: dict[str, Any]) -> dict[str, Any] | None:
    try:
        booking_id = uuid.UUID(str(p.get("booking_id")))
    except ValueError:
        return None
    return await conn.fetch_one(_BOOKING, {"booking_id": booking_id})


async def paid_on(conn, ctx, booking) -> int:
    """What the booking's payments stand at (captured less refunded), as deposits answers it."""
    return await ctx.service(DepositOperations, caller="loyalty").paid_cents(conn, booking["id"])


async def on_payment_succeeded(conn, event, ctx) -> None:
    """A payment without a booking earns at once; a booking's payments earn when it is completed
    (``on_booking_completed``), or at once when it already was."""
    p = event["payload"]
    if not await _known(conn, p):
        return
    booking = await _booking_of(conn, p)
    if booking is None:
        await earn_for_payment(conn, ctx, uuid.UUID(str(p["customer_id"])), str(p["payment_id"]),
                               int(p.get("amount_cents") or 0))
    elif booking["status"] == "completed":
        await earn_for_payment(conn, ctx, booking["customer_id"], str(p["payment_id"]),
                               await paid_on(conn, ctx, booking), booking_id=booking["id"])


async def on_booking_completed(conn, event, ctx) -> None:
    """A completed booking earns on what its payments stand at, once (``payment:booking:<id>``)."""
    booking = await _booking_of(conn, event["payload"])
    if booking is not None and booking["status"] == "completed":
        await earn_for_payment(conn, ctx, booking["customer_id"], f"booking:{booking['id']}",
                               await paid_on(conn, ctx, booking), booking_id=booking["id"])


async def on_payment_refunded(conn, event, ctx) -> None:
    """A refund takes back what its payment earned, or, when the payment earned with its booking's
    completion, its share of what the booking earned. A completed booking whose payments are
    refunded in full gives back the points redeemed on it too, once (before its completion a
    cancellation does that; a partial refund keeps the discount the points bought)."""
    p = event["payload"]
    if await _known(conn, p):
        payment_id = str(p["payment_id"])
        by_booking = f"booking:{p.get('booking_id')}"
        if not await _seen(conn, f"payment:{payment_id}") and await _seen(conn, f"payment:{by_booking}"):
            payment_id = by_booking
        await reverse_for_refund(conn, ctx, uuid.UUID(str(p["customer_id"])), payment_id,
                                 int(p.get("amount_cents") or 0), str(p.get("refund_id") or event["id"]))
        booking = await _booking_of(conn, p)
        if booking is not None and booking["status"] == "completed" and await paid_on(conn, ctx, booking) <= 0:
            await give_back_for_booking(conn, ctx, booking["id"], why="refunded")


async def on_booking_cancelled(conn, event, ctx) -> None:
    await give_back_for_booking(conn, ctx, uuid.UUID(str(event["payload"]["booking_id"])))


async def export_sections(conn, ctx, customer_id: uuid.UUID) -> dict[str, list[dict[str, Any]]]:
    """The customer's points account and ledger, for their data export."""
    account = await conn.fetch_all(sa.select(accounts).where(accounts.c.customer_id == customer_id))
    entries = await conn.fetch_all(sa.select(ledger).join(accounts, accounts.c.id == ledger.c.account_id)
                                   .where(accounts.c.customer_id == customer_id).order_by(ledger.c.seq))
    return {"loyalty.account": [dict(r) for r in account], "loyalty.transactions": [dict(r) for r in entries]}


async def merge_customer(conn, ctx, source_id: uuid.UUID, target_id: uuid.UUID) -> None:
    """A merge: the duplicate's account moves whole, or, when both have one, its ledger joins
    the kept account and the balances, lifetime points and debt add up."""
    rows = {r["customer_id"]: r for r in await conn.fetch_all(
        sa.select(accounts).where(accounts.c.customer_id.in_([source_id, target_id])).with_for_update())}
    source, target = rows.get(source_id), rows.get(target_id)
    if source is None:
        return
    if target is None:
        await conn.run(sa.update(accounts).where(accounts.c.id == source["id"]).values(customer_id=target_id))
        return
    await conn.run(sa.update(ledger).where(ledger.c.account_id == source["id"]).values(account_id=target["id"]))
    lifetime = source["lifetime_points"] + target["lifetime_points"]
    await conn.run(sa.update(accounts).where(accounts.c.id == target["id"]).values(
        points_balance=source["points_balance"] + target["points_balance"], lifetime_points=lifetime,
        points_debt=source["points_debt"] + target["points_debt"], tier=settings_of(ctx).tier_of(lifetime),
        updated_at=sa.func.now()))
    await conn.run(sa.delete(accounts).where(accounts.c.id == source["id"]))


_BALANCES = sa.select(accounts.c.customer_id, accounts.c.points_balance).where(
    accounts.c.customer_id == sa.any_(sa.bindparam("ids", type_=ARRAY(sa.Uuid))))


async def message_variables(conn, customer_ids) -> dict[uuid.UUID, dict[str, str]]:
    """``loyalty_balance`` of each customer, for personalised messages (no account: 0)."""
    found = {r["customer_id"]: r["points_balance"] for r in await conn.fetch_all(_BALANCES, {"ids": list(customer_ids)})}
    return {c: {"loyalty_balance": str(found.get(c, 0))} for c in customer_ids}
