"""The admin users and roles API (thin: the rules live in service.py)."""

import uuid

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from myhibachi.core import (LIMIT, Conn, Connection, Principal, Problem, audit, authenticated, error_responses,
                            login_guard, require)
from myhibachi.plugins.admin_rbac import schemas, service

# Committed before the response is sent, so a failed commit is never answered with a 2xx.



def add_routes(router: APIRouter, ctx) -> None:
    @router.post("/auth/staff/login", response_model=schemas.LoginResponse, tags=["admin auth"],
                 responses=error_responses(401, 429))
    async def login(body: schemas.LoginRequest, request: Request):
        """Staff password login: an access token bound to a new session. Repeated failures
        back off per account and address (429 with `Retry-After`); nobody can lock an account."""
        guard, source = login_guard(request, "staff")
        await guard.check(body.email, source)
        try:
            answer = await service.login(request.app.state.ctx, email=body.email, password=body.password,
                                         ip=source,
                                         user_agent=request.headers.get("user-agent"))
        except Problem as problem:
            if problem.status == 401:
                await guard.failed(body.email, source)
            raise
        await guard.succeeded(body.email, source)
        return answer

    @router.post("/auth/staff/refresh", response_model=schemas.Token, tags=["admin auth"],
                 responses=error_responses(400, 401))
    async def refresh(request: Request, principal: Principal = Depends(authenticated)):
        """A new access token for the caller's session, while the session lasts (12 hours)."""
        if principal.kind != "admin":
            raise Problem(400, "Not an admin session", "only admin sessions can be refreshed", kind="bad-request")
        return service.refresh(request.app.state.ctx, principal)

    @router.post("/auth/staff/logout", status_code=204, tags=["admin auth"], responses=error_responses(401))
    async def logout(request: Request, principal: Principal = Depends(authenticated)):
        """End the caller's session: its tokens stop working at once."""
        if principal.kind != "admin":
            raise Problem(400, "Not an admin session", "only admin sessions can be ended here", kind="bad-request")
        await service.logout(request.app.state.ctx, principal)
        return Response(status_code=204)

    @router.get("/auth/staff/me", response_model=schemas.AdminUser, tags=["admin auth"],
                responses=error_responses(401, 404))
    async def me(principal: Principal = Depends(authenticated), conn: Conn = Connection):
        """The signed-in admin."""
        if principal.kind != "admin":
            raise Problem(404, "Admin user not found", "the caller is not an admin user", kind="not-found")
        return await service.get_user(conn, uuid.UUID(principal.id))

    # --- users -----------------------------------------------------------------------------

    @router.get("/admin/users", response_model=schemas.AdminUserPage, tags=["admin users"],
                responses=error_responses(400, 401, 403))
    async def list_users(
        cursor: str | None = None,
        limit: int = LIMIT,
        status: str | None = Query(None, pattern="^(active|inactive)$"),
        role: str | None = None,
        conn: Conn = Connection,
        _: Principal = Depends(require("admin_users.read")),
    ):
        items, nxt = await service.list_users(conn, cursor=cursor, limit=limit, status=status, role=role)
        return {"items": items, "next_cursor": nxt}

    @router.post("/admin/users", response_model=schemas.AdminUser, status_code=201, tags=["admin users"],
                 responses=error_responses(401, 403, 409))
    async def create_user(body: schemas.AdminUserCreate, request: Request, conn: Conn = Connection,
                          actor: Principal = Depends(require("admin_users.write"))):
        user = await service.create_user(conn, request.app.state.ctx, actor, email=str(body.email), name=body.name,
                                         password=body.password, roles=body.roles)
        audit.note_change(request, "admin_user", user["id"], {
            **{f: {"old": None, "new": user[f]} for f in ("email", "name", "status", "roles")},
            "password": {"old": None, "new": "set"},
        })
        return user

    @router.get("/admin/users/{user_id}", response_model=schemas.AdminUser, tags=["admin users"],
                responses=error_responses(401, 403, 404))
    async def get_user(user_id: uuid.UUID, conn: Conn = Connection, _: Principal = Depends(require("admin_users.read"))):
        return await service.get_user(conn, user_id)

    @router.put("/admin/users/{user_id}", response_model=schemas.AdminUser, tags=["admin users"],
                responses=error_responses(401, 403, 404, 409))
    async def update_user(user_id: uuid.UUID, body: schemas.AdminUserUpdate, request: Request, conn: Conn = Connection,
                          actor: Principal = Depends(require("admin_users.write"))):
        user, changes = await service.update_user(conn, request.app.state.ctx, actor, user_id,
                                                  body.model_dump(exclude_unset=True))
        audit.note_change(request, "admin_user", user_id, changes)
        return user

    @router.delete("/admin/users/{user_id}", response_model=schemas.AdminUser, tags=["admin users"],
                   responses=error_responses(401, 403, 404, 409))
    async def deactivate_user(user_id: uuid.UUID, request: Request, conn: Conn = Connection,
                              actor: Principal = Depends(require("admin_users.write"))):
        """Deactivate (never delete) a staff account; its sessions end at once."""
        user, changes = await service.deactivate_user(conn, request.app.state.ctx, actor, user_id)
        audit.note_change(request, "admin_user", user_id, changes, action="admin_user.deactivate")
        return user

    @router.put("/admin/users/{user_id}/roles", response_model=schemas.AdminUser, tags=["admin users"],
                responses=error_responses(401, 403, 404, 409))
    async def set_roles(user_id: uuid.UUID, body: schemas.RoleAssignment, request: Request, conn: Conn = Connection,
                        actor: Principal = Depends(require("admin_users.write"))):
        """Replace the user's roles; only roles within the caller's own permissions can be given."""
        user, changes = await service.set_roles(conn, request.app.state.ctx, actor, user_id, body.roles)
        audit.note_change(request, "admin_user", user_id, changes, action="admin_user.set_roles")
        return user

    # --- roles -----------------------------------------------------------------------------

    @router.get("/admin/permissions", response_model=schemas.PermissionList, tags=["admin roles"],
                responses=error_responses(401, 403))
    async def list_permissions(request: Request, _: Principal = Depends(require("roles.read"))):
        """Every permission registered by the core and the installed plugins."""
        return {"items": sorted(request.app.state.ctx.permissions), "next_cursor": None}

    @router.get("/admin/roles", response_model=schemas.RoleList, tags=["admin roles"],
                responses=error_responses(401, 403))
    async def list_roles(request: Request, conn: Conn = Connection, _: Principal = Depends(require("roles.read"))):
        return {"items": await service.list_roles(conn, request.app.state.ctx), "next_cursor": None}

    @router.post("/admin/roles", response_model=schemas.Role, status_code=201, tags=["admin roles"],
                 responses=error_responses(401, 403, 409))
    async def create_role(body: schemas.RoleCreate, request: Request, conn: Conn = Connection,
                          actor: Principal = Depends(require("roles.write"))):
        role = await service.create_role(conn, request.app.state.ctx, actor, name=body.name,
                                         description=body.description, permissions=body.permissions)
        audit.note_change(request, "role", role["id"], {
            "role": {"old": None, "new": role["name"]}, "permissions": {"old": None, "new": role["permissions"]}})
        return role

    @router.get("/admin/roles/{role_id}", response_model=schemas.Role, tags=["admin roles"],
                responses=error_responses(401, 403, 404))
    async def get_role(role_id: uuid.UUID, request: Request, conn: Conn = Connection,
                       _: Principal = Depends(require("roles.read"))):
        ctx = request.app.state.ctx
        return service.role_out(ctx, await service.get_role(conn, ctx, role_id))

    @router.put("/admin/roles/{role_id}", response_model=schemas.Role, tags=["admin roles"],
                responses=error_responses(401, 403, 404, 409))
    async def update_role(role_id: uuid.UUID, body: schemas.RoleUpdate, request: Request, conn: Conn = Connection,
                          actor: Principal = Depends(require("roles.write"))):
        role, changes = await service.update_role(conn, request.app.state.ctx, actor, role_id,
                                                  description=body.description, permissions=body.permissions)
        audit.note_change(request, "role", role_id, changes)
        return role

    @router.delete("/admin/roles/{role_id}", status_code=204, tags=["admin roles"],
                   responses=error_responses(401, 403, 404, 409))
    async def delete_role(role_id: uuid.UUID, request: Request, conn: Conn = Connection,
                          actor: Principal = Depends(require("roles.write"))):
        """Delete a custom role; users holding it lose it."""
        role = await service.delete_role(conn, request.app.state.ctx, actor, role_id)
        audit.note_change(request, "role", role_id, {"permissions": {"old": role["permissions"], "new": None}})
        return Response(status_code=204)
