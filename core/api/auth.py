"""``/v1/auth``: refresh and sign out, for every kind of signed-in person."""
from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from myhibachi.core import customers
from myhibachi.core.auth import issue_session, revoke_family, revoke_refresh_token, use_refresh_token
from myhibachi.core.errors import Problem, error_responses


# Responses carrying tokens must not be cached (RFC 6749, 5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class TokenPair(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Lifetime of the access token in seconds.")
    refresh_token: str = Field(description="Usable once; each refresh returns a new one.")


class RefreshIn(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=200)


def invalid_refresh() -> Problem:
    return Problem(401, "Unauthorized", "the refresh token is not valid; sign in again", kind="invalid-token",
                   headers={"WWW-Authenticate": "Bearer"})


def router(make) -> APIRouter:
    r = make("/auth", tags=["auth"])

    @r.post("/refresh", response_model=TokenPair, responses=error_responses(401))
    async def refresh(body: RefreshIn, request: Request, response: Response) -> TokenPair:
        """Trade a refresh token for a new pair. A refresh token already used revokes its whole family."""
        ctx = request.app.state.ctx
        # Its own transaction: a reuse must revoke the family even though the request is refused.
        async with ctx.db.transaction() as conn:
            spent = await use_refresh_token(conn, ctx.settings, body.refresh_token, ctx.cache)
            if spent and spent["kind"] == "customer" and not await customers.is_active(conn, uuid.UUID(spent["subject"])):
                await revoke_family(conn, spent["family"], ctx.cache)
                spent = None
            pair = await issue_session(conn, ctx.settings, subject=spent["subject"], kind=spent["kind"],
                                       family=spent["family"]) if spent else None
        if pair is None:
            raise invalid_refresh()
        response.headers.update(NO_STORE)
        return TokenPair(**pair)

    @r.post("/logout", status_code=204, response_class=Response)
    async def logout(body: RefreshIn, request: Request) -> Response:
        """Revoke the refresh token and every token refreshed from the same sign-in."""
        ctx = request.app.state.ctx
        async with ctx.db.transaction() as conn:
            await revoke_refresh_token(conn, ctx.settings, body.refresh_token, ctx.cache)
        return Response(status_code=204)

    return r
