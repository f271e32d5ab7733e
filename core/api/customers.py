"""``/v1/customers`` (sign-up, sign-in, own profile) and ``/v1/admin/customers``."""
from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field, create_model

from myhibachi.core import customers as service
from myhibachi.core.api.auth import NO_STORE, TokenPair
from myhibachi.core.auth import Principal, current_customer, issue_session, require
from myhibachi.core.customers import Customer, CustomerPage
from myhibachi.core.db import Conn
from myhibachi.core.routing import Connection
from myhibachi.core.errors import Problem, error_responses, not_found
from myhibachi.core.pagination import CURSOR, LIMIT
from myhibachi.core.ratelimit import login_guard


class SignupIn(BaseModel):
    email: str = Field(max_length=320)
    password: str = Field(min_length=service.MIN_PASSWORD, max_length=service.MAX_PASSWORD)
    name: str = Field(max_length=service.MAX_NAME)
    phone: str | None = Field(None, max_length=40, description="Any common format; US numbers need no +1.")
    address: str | None = Field(None, max_length=service.MAX_ADDRESS)


class SignupOut(TokenPair):
    customer: Customer


class SignupAccepted(BaseModel):
    status: Literal["confirmation_sent"] = "confirmation_sent"
    detail: str = "a code is on its way to the email address: confirm it with the password to sign in"


class ConfirmSignupIn(BaseModel):
    code: str = Field(min_length=1, max_length=2000, description="The code the sign-up email carries.")
    password: str = Field(max_length=service.MAX_PASSWORD, description="The password given at sign-up.")


class ConfirmEmailIn(BaseModel):
    code: str = Field(min_length=1, max_length=2000, description="The code sent to the new address.")


class LoginIn(BaseModel):
    email: str = Field(max_length=320)
    password: str = Field(max_length=service.MAX_PASSWORD)


class ProfileUpdate(BaseModel):
    """Only the fields sent change; null clears phone or address."""

    email: str | None = Field(None, max_length=320)
    name: str | None = Field(None, max_length=service.MAX_NAME)
    phone: str | None = Field(None, max_length=40)
    address: str | None = Field(None, max_length=service.MAX_ADDRESS)


class AdminCustomerUpdate(ProfileUpdate):
    status: Literal["active", "disabled"] | None = None


def _actor(principal: Principal) -> str:
    return f"{principal.kind}:{principal.id}"


async def _view(request: Request, principal: Principal, found: dict | None) -> BaseModel:
    if found is None:
        raise not_found("Customer")
    return (await service.views(request.app.state.ctx, principal, [found]))[0]


def router(make, models) -> APIRouter:
    """Built per app, with the customer view its plugins extended."""
    r = make("/customers", tags=["customers"])
    View = models.customer
    Signup = SignupOut if View is Customer else create_model(
        "SignupOut", __base__=SignupOut, __module__=SignupOut.__module__, customer=(View, ...))

    @r.post("", response_model=SignupAccepted, status_code=202, responses=error_responses(503))
    async def signup(body: SignupIn, request: Request, conn: Conn = Connection) -> SignupAccepted:
        """Ask for an account: the address gets a code to confirm it with (`POST
        /v1/customers/confirm`). The answer is the same whether or not the address has an
        account already (its owner is told by email instead), so it tells no one who is a customer."""
        await service.request_signup(conn, request.app.state.ctx, **body.model_dump())
        return SignupAccepted()

    @r.post("/confirm", response_model=Signup, status_code=201, responses=error_responses(401, 409))
    async def confirm_signup(body: ConfirmSignupIn, request: Request, response: Response,
                             conn: Conn = Connection) -> SignupOut:
        """Create the account of a sign-up code, given with its password, and sign it in."""
        ctx = request.app.state.ctx
        customer = await service.confirm_signup(conn, ctx, body.code, body.password)
        tokens = await issue_session(conn, ctx.settings, subject=str(customer["id"]), kind="customer")
        response.headers.update(NO_STORE)
        return Signup(customer=await _view(request, Principal("customer", str(customer["id"])), customer),
                      **tokens)

    @r.post("/login", response_model=TokenPair, responses=error_responses(401, 429))
    async def login(body: LoginIn, request: Request, response: Response, conn: Conn = Connection) -> TokenPair:
        """Sign in with email and password: a short-lived access token and a refresh token.
        Repeated failures back off per account and address (429 with `Retry-After`)."""
        ctx = request.app.state.ctx
        guard, source = login_guard(request, "customer")
        await guard.check(body.email, source)
        found = await service.authenticate(conn, ctx, body.email, body.password)
        if found is None:
            await guard.failed(body.email, source)
            raise Problem(401, "Unauthorized", "the email or password is wrong", kind="invalid-credentials")
        await guard.succeeded(body.email, source)
        response.headers.update(NO_STORE)
        return TokenPair(**await issue_session(conn, ctx.settings, subject=str(found["id"]), kind="customer"))

    @r.get("/me", response_model=View, responses=error_responses(401, 403, 404))
    async def me(request: Request, principal: Principal = Depends(current_customer),
                 conn: Conn = Connection) -> Customer:
        found = await service.get_customer(conn, request.app.state.ctx, uuid.UUID(principal.id))
        return await _view(request, principal, found)

    @r.patch("/me", response_model=View, responses=error_responses(401, 403, 404, 503))
    async def update_me(body: ProfileUpdate, request: Request, principal: Principal = Depends(current_customer),
                        conn: Conn = Connection) -> Customer:
        """Only the fields sent change. A new email takes effect once confirmed with the code
        sent to it (`POST /v1/customers/me/email`); the answer is the same whether or not
        another account has that address."""
        ctx = request.app.state.ctx
        changes = body.model_dump(exclude_unset=True)
        email = changes.pop("email", None)
        customer_id = uuid.UUID(principal.id)
        found = await service.update_customer(conn, ctx, customer_id, actor=_actor(principal), **changes)
        if found is not None and email is not None and service.normalise_email(email) != found["email"]:
            await service.request_email_change(conn, ctx, customer_id, email)
        return await _view(request, principal, found)

    @r.post("/me/email", response_model=View, responses=error_responses(401, 403, 404, 409))
    async def confirm_email(body: ConfirmEmailIn, request: Request, principal: Principal = Depends(current_customer),
                            conn: Conn = Connection) -> Customer:
        """Move the account to the address the code was sent to."""
        found = await service.confirm_email_change(conn, request.app.state.ctx, uuid.UUID(principal.id), body.code,
                                                   actor=_actor(principal))
        return await _view(request, principal, found)

    return r


def admin_router(make, models) -> APIRouter:
    r = make("/admin/customers", tags=["customers"])
    # ``:uuid`` so plugins' paths beside them (``/admin/customers/duplicates``) are reachable
    View = models.customer

    @r.get("", response_model=models.customer_page, responses=error_responses(401, 403))
    async def list_customers(
        request: Request,
        limit: int = LIMIT,
        cursor: str | None = CURSOR,
        email: str | None = Query(None, max_length=320, description="Exact match, any case."),
        phone: str | None = Query(None, max_length=40, description="Exact match after normalising to E.164."),
        principal: Principal = Depends(require("customers.read")),
        conn: Conn = Connection,
    ) -> CustomerPage:
        """Newest first, or the customers with exactly this email or phone."""
        ctx = request.app.state.ctx
        items, next_cursor = await service.list_customers(conn, ctx, limit=limit, cursor=cursor, email=email,
                                                          phone=phone)
        return models.customer_page(items=await service.views(ctx, principal, items), next_cursor=next_cursor)

    @r.get("/{customer_id:uuid}", response_model=View, responses=error_responses(401, 403, 404))
    async def get_customer(customer_id: uuid.UUID, request: Request,
                           principal: Principal = Depends(require("customers.read")),
                           conn: Conn = Connection) -> Customer:
        found = await service.get_customer(conn, request.app.state.ctx, customer_id)
        return await _view(request, principal, found)

    @r.patch("/{customer_id:uuid}", response_model=View, responses=error_responses(401, 403, 404, 409))
    async def update_customer(customer_id: uuid.UUID, body: AdminCustomerUpdate, request: Request,
                              principal: Principal = Depends(require("customers.write")),
                              conn: Conn = Connection) -> Customer:
        found = await service.update_customer(conn, request.app.state.ctx, customer_id, actor=_actor(principal),
                                              **body.model_dump(exclude_unset=True))
        return await _view(request, principal, found)

    return r
