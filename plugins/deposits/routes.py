"""The deposits API, thin over the service."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from fastapi import APIRouter, Depends, Query, Request

from myhibachi.core import (
    CURSOR, LIMIT, Conn, Connection, Principal, app_context, authenticated, error_responses, idempotency,
)
from myhibachi.plugins.deposits import service
from myhibachi.plugins.deposits.schemas import (
    BalanceCreate,
    Deposit,
    DepositConfirm,
    DepositCreate,
    DepositPage,
    RefundPage,
    DepositWithRefund,
    Refund,
    RefundCreate,
    Status,
)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def add_routes(router: APIRouter, ctx) -> None:
    cfg = ctx.plugins.get("deposits").settings
    base = "/payments/deposits"

    @router.post(base, response_model=Deposit, status_code=201, responses=error_responses(401, 403, 409, 422, 503),
                 summary="Create a booking's deposit (a PaymentIntent at the provider)")
    @idempotency.idempotent
    async def create(body: DepositCreate, request: Request, conn: Conn = Connection, ctx=Depends(app_context),
                     principal: Principal = Depends(authenticated)) -> Deposit:
        """A customer for their own booking, staff with `payments.write`. Without `amount_cents` the
        amount is the settings' percentage of the booking's stored total, at least their minimum."""
        key = service.derived_id(idempotency.scope_of(principal), request.headers[idempotency.HEADER], "deposit")
        row = await service.create_deposit(conn, ctx, cfg, principal, body.booking_id, body.amount_cents, key)
        return Deposit(**row)

    @router.get(base, response_model=DepositPage, responses=error_responses(401, 403, 422),
                summary="List deposits, newest first")
    async def list_(booking_id: uuid.UUID | None = None, customer_id: uuid.UUID | None = None,
                    status: Status | None = None,
                    created_from: datetime | None = Query(None, description="Created at or after (UTC if no offset)."),
                    created_to: datetime | None = Query(None, description="Created before (UTC if no offset)."),
                    cursor: str | None = CURSOR, limit: int = LIMIT,
                    conn: Conn = Connection, principal: Principal = Depends(authenticated)) -> DepositPage:
        """Own deposits for a customer, any with `payments.read`."""
        rows, next_cursor = await service.list_deposits(
            conn, principal, booking_id=booking_id, customer_id=customer_id, status=status,
            created_from=_aware(created_from), created_to=_aware(created_to), cursor=cursor, limit=limit)
        return DepositPage(items=[Deposit(**r) for r in rows], next_cursor=next_cursor)

    @router.get(base + "/{deposit_id}", response_model=Deposit, responses=error_responses(401, 403, 404),
                summary="One deposit")
    async def get(deposit_id: uuid.UUID, conn: Conn = Connection, principal: Principal = Depends(authenticated)) -> Deposit:
        return Deposit(**await service.get_deposit(conn, principal, deposit_id))

    @router.put(base + "/{deposit_id}/confirm", response_model=Deposit,
                responses=error_responses(401, 403, 404, 409, 422, 503), summary="Pay a deposit")
    async def confirm(deposit_id: uuid.UUID, body: DepositConfirm, conn: Conn = Connection, ctx=Depends(app_context),
                      principal: Principal = Depends(authenticated)) -> Deposit:
        """Confirm the PaymentIntent with a payment method. A decline answers 200 with status
        `failed` and its reason; confirming again with another method is allowed."""
        return Deposit(**await service.confirm_deposit(conn, ctx, principal, deposit_id, body.payment_method))

    @router.put(base + "/{deposit_id}/cancel", response_model=Deposit,
                responses=error_responses(401, 403, 404, 409, 503), summary="Cancel a deposit (refunds once paid)")
    async def cancel(deposit_id: uuid.UUID, conn: Conn = Connection, ctx=Depends(app_context),
                     principal: Principal = Depends(authenticated)) -> Deposit:
        """Before capture the PaymentIntent is cancelled; after capture what remains is refunded
        (staff with `payments.write` only)."""
        return Deposit(**await service.cancel_deposit(conn, ctx, principal, deposit_id))

    @router.get(base + "/{deposit_id}/refunds", response_model=RefundPage,
                responses=error_responses(401, 403, 404, 422), summary="A deposit's refunds, oldest first")
    async def refunds(deposit_id: uuid.UUID, limit: int = LIMIT, cursor: str | None = CURSOR, conn: Conn = Connection,
                      principal: Principal = Depends(authenticated)) -> RefundPage:
        await service.get_deposit(conn, principal, deposit_id)
        rows, next_cursor = await service.refunds_of(conn, deposit_id, limit=limit, cursor=cursor)
        return RefundPage(items=[Refund(**r) for r in rows], next_cursor=next_cursor)

    @router.post(base + "/{deposit_id}/refunds", response_model=DepositWithRefund, status_code=201,
                 responses=error_responses(401, 403, 404, 409, 422, 503), summary="Refund a deposit, fully or partly")
    @idempotency.idempotent
    async def refund(deposit_id: uuid.UUID, body: RefundCreate, request: Request, conn: Conn = Connection,
                     ctx=Depends(app_context), principal: Principal = Depends(authenticated)) -> DepositWithRefund:
        """Staff with `payments.write`. Refunds together never exceed what was captured (409)."""
        key = service.derived_id(idempotency.scope_of(principal), request.headers[idempotency.HEADER],
                                 f"refund:{deposit_id}")
        dep, row = await service.refund_deposit(conn, ctx, principal, deposit_id, body.amount_cents, body.reason, key)
        return DepositWithRefund(deposit=Deposit(**dep), refund=Refund(**row))

    @router.post("/payments/balance", response_model=Deposit, status_code=201,
                 responses=error_responses(401, 403, 404, 409, 422, 503),
                 summary="Pay the rest of a booking after its deposit")
    @idempotency.idempotent
    async def balance(body: BalanceCreate, request: Request, conn: Conn = Connection, ctx=Depends(app_context),
                      principal: Principal = Depends(authenticated)) -> Deposit:
        """A customer for their own booking, staff with `payments.write`: one payment (`kind`
        `balance`) of what is due, or of `amount_cents` of it (422 above it, 409 when nothing is
        due). A decline answers 201 with status `failed` and its reason; pay again with a new key."""
        key = service.derived_id(idempotency.scope_of(principal), request.headers[idempotency.HEADER], "balance")
        return Deposit(**await service.pay_balance(conn, ctx, principal, body.booking_id, body.payment_method,
                                                   body.amount_cents, key))
