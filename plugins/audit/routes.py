"""Querying the audit trail (read only: nothing here changes it)."""

from datetime import datetime

from fastapi import APIRouter, Depends, Path, Query

from myhibachi.core import CURSOR, LIMIT, Conn, Connection, Principal, error_responses, require
from myhibachi.plugins.audit import schemas, service



def add_routes(router: APIRouter, ctx) -> None:
    read = Depends(require("audit.read"))
    errors = error_responses(401, 403)

    async def page(conn, cursor, limit, **filters):
        items, nxt = await service.list_logs(conn, cursor=cursor, limit=limit, **filters)
        return {"items": items, "next_cursor": nxt}

    @router.get("/admin/audit-logs", response_model=schemas.AuditLogPage, tags=["audit"], responses=errors)
    async def list_logs(
        user: str | None = Query(None, max_length=64, description="Admin user or API key id"),
        action: str | None = Query(None, max_length=200),
        resource_type: str | None = Query(None, max_length=100),
        resource_id: str | None = Query(None, max_length=200),
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = CURSOR,
        limit: int = LIMIT,
        conn: Conn = Connection,
        _: Principal = read,
    ):
        """Every recorded staff action, newest first."""
        return await page(conn, cursor, limit, actor_id=user, action=action, resource_type=resource_type,
                          resource_id=resource_id, since=since, until=until)

    @router.get("/admin/audit-logs/user/{user_id}", response_model=schemas.AuditLogPage, tags=["audit"],
                responses=errors)
    async def user_activity(user_id: str = Path(max_length=64), cursor: str | None = CURSOR, limit: int = LIMIT,
                            conn: Conn = Connection, _: Principal = read):
        """What one admin user (or API key) did."""
        return await page(conn, cursor, limit, actor_id=user_id)

    @router.get("/admin/audit-logs/resource/{resource_type}/{resource_id}", response_model=schemas.AuditLogPage,
                tags=["audit"], responses=errors)
    async def resource_history(resource_type: str = Path(max_length=100), resource_id: str = Path(max_length=200),
                               cursor: str | None = CURSOR, limit: int = LIMIT,
                               conn: Conn = Connection, _: Principal = read):
        """Everything done to one resource."""
        return await page(conn, cursor, limit, resource_type=resource_type, resource_id=resource_id)
