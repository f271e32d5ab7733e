"""``/v1/admin/api-keys``: machine credentials listed, created (with an expiry) and revoked.
Writes are staff requests, so the audit trail records them with the request."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from myhibachi.core.auth import (Principal, create_api_key, has_permission, list_api_keys, permission_matches_known,
                                 require, revoke_api_key)
from myhibachi.core.errors import Problem, error_responses, invalid, not_found
from myhibachi.core.db import Conn
from myhibachi.core.pagination import CURSOR, LIMIT, NextCursor
from myhibachi.core.routing import Connection

PERMISSIONS = ["api_keys.manage"]
MAX_DAYS = 3650


class ApiKey(BaseModel):
    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    created_by: str | None
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime


class ApiKeyPage(BaseModel):
    items: list[ApiKey]
    next_cursor: NextCursor


class ApiKeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[str] = Field(min_length=1, max_length=100)
    expires_in_days: int = Field(90, ge=1, le=MAX_DAYS, description="The key is refused after this many days.")


class ApiKeyCreated(ApiKey):
    key: str = Field(description="Shown once: only its hash is stored.")


def check_scopes(principal: Principal, scopes: list[str], known: set[str]) -> None:
    """A key gets only scopes that exist and that its creator holds (no escalation)."""
    for i, scope in enumerate(scopes):
        if not isinstance(scope, str) or not permission_matches_known(scope, known):
            raise invalid(f"body.scopes.{i}", "a known permission (or area.*, *)")
        if not all(has_permission(principal.permissions, p) for p in known if has_permission({scope}, p)) \
                or (scope == "*" and "*" not in principal.permissions):
            raise Problem(403, "Forbidden", f"you cannot grant {scope}, which you do not hold", kind="forbidden",
                          permission=scope)


def router(make) -> APIRouter:
    r = make("/admin/api-keys", tags=["api_keys"])
    guard = require("api_keys.manage")

    @r.get("", response_model=ApiKeyPage, responses=error_responses(401, 403))
    async def list_keys(limit: int = LIMIT, cursor: str | None = CURSOR, _: Principal = Depends(guard),
                        conn: Conn = Connection) -> ApiKeyPage:
        """Every key, newest first (never the key itself)."""
        rows, next_cursor = await list_api_keys(conn, limit=limit, cursor=cursor)
        return ApiKeyPage(items=[ApiKey(**row) for row in rows], next_cursor=next_cursor)

    @r.post("", response_model=ApiKeyCreated, status_code=201, responses=error_responses(401, 403))
    async def create_key(body: ApiKeyIn, request: Request, principal: Principal = Depends(guard),
                         conn: Conn = Connection) -> ApiKeyCreated:
        """A new key with the given scopes (at most the caller's own), refused after `expires_in_days`."""
        ctx = request.app.state.ctx
        check_scopes(principal, body.scopes, ctx.permissions)
        key, row = await create_api_key(conn, ctx.settings, name=body.name, scopes=body.scopes,
                                        created_by=f"{principal.kind}:{principal.id}",
                                        expires_at=datetime.now(timezone.utc) + timedelta(days=body.expires_in_days))
        return ApiKeyCreated(key=key, **{k: row[k] for k in ApiKey.model_fields})

    @r.post("/{key_id}/revoke", response_model=ApiKey, responses=error_responses(401, 403, 404))
    async def revoke_key(key_id: uuid.UUID, _: Principal = Depends(guard), conn: Conn = Connection) -> ApiKey:
        """Revoke a key: refused from its next request on."""
        row = await revoke_api_key(conn, key_id)
        if row is None:
            raise not_found("API key")
        return ApiKey(**row)

    return r
