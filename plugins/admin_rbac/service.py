"""Admin users, roles, sessions and the permission rules, callable without HTTP.

Rules kept here:

* a role's permissions are registered strings, ``area.*`` or ``*``; anything else is 422;
* nobody grants what they do not hold: creating or changing a role, or giving a user a
  role, needs every permission it carries (403), and a user who holds more than the
  acting admin cannot be changed by them (403);
* there is always an active super admin: the last one cannot be deactivated nor lose the
  role (409);
* five failed logins within 15 minutes lock the account for 15 minutes (429).
"""
from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.dialects.postgresql import insert as pg_insert
from psycopg import IntegrityError

from myhibachi.core import (
    Principal, Problem, audit, conflict, fetch_page, has_permission, hash_password, invalid, issue_access_token,
    needs_rehash, not_found, permission_matches_known, utcnow, verify_password,
)
from myhibachi.plugins.admin_rbac.models import admin_roles, admin_sessions, admin_user_roles, admin_users

SUPER_ADMIN = "super_admin"
BUILTIN_ROLES = {
    SUPER_ADMIN: "Everything, including roles and other super admins.",
    "admin": "Everything except defining roles.",
    "manager": "Runs the business: every permission outside staff accounts, roles, keys and "
               "system settings, and reads everything.",
    "staff": "Day-to-day work: reads business data, changes bookings and customers.",
    "read_only": "Reads everything, changes nothing.",
}
# Areas that govern the platform itself rather than the business.
SYSTEM_AREAS = frozenset({"admin_users", "roles", "api_keys", "audit", "plugins", "config", "flags", "system"})
STAFF_WRITE_AREAS = frozenset({"bookings", "customers"})

MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
SESSION_LIFETIME = timedelta(hours=12)
SUPER_ADMIN_LOCK = 0x61646D6E  # serialises changes that could remove the last super admin

PERMISSION_FORMAT = re.compile(r"^(\*|[a-z][a-z0-9_]*\.(\*|[a-z][a-z0-9_]*))$")


# --- permissions ---------------------------------------------------------------------------


def area(permission: str) -> str:
    return permission.split(".", 1)[0]


def builtin_permissions(name: str, known: set[str]) -> frozenset[str]:
    """A built-in role's permissions, decided from what the installed plugins registered."""
    reads = {p for p in known if p.endswith(".read")}
    if name == SUPER_ADMIN:
        return frozenset({"*"})
    if name == "admin":
        return frozenset(known - {"roles.write"})
    if name == "manager":
        return frozenset(reads | {p for p in known if area(p) not in SYSTEM_AREAS})
    if name == "staff":
        return frozenset({p for p in reads if area(p) not in SYSTEM_AREAS}
                         | {p for p in known if area(p) in STAFF_WRITE_AREAS})
    if name == "read_only":
        return frozenset(reads)
    raise KeyError(name)


def role_permissions(ctx, row: Any) -> frozenset[str]:
    if row["builtin"]:
        cache = ctx.extra.setdefault("admin_rbac.builtin", {})
        if row["name"] not in cache:
            cache[row["name"]] = builtin_permissions(row["name"], ctx.permissions)
        return cache[row["name"]]
    return frozenset(row["permissions"])


def check_permissions(ctx, permissions: list[str]) -> list[str]:
    """The permissions, de-duplicated and sorted; 422 naming the first unknown one."""
    for i, perm in enumerate(permissions):
        if not PERMISSION_FORMAT.match(perm) or not permission_matches_known(perm, ctx.permissions):
            raise invalid(f"permissions.{i}", f"unknown permission {perm!r}")
    return sorted(set(permissions))


def ungrantable(actor: Principal, permissions: frozenset[str] | set[str]) -> list[str]:
    return sorted(p for p in permissions if not has_permission(actor.permissions, p))


def require_grantable(actor: Principal, permissions, what: str) -> None:
    missing = ungrantable(actor, permissions)
    if missing:
        raise Problem(403, "Forbidden", f"{what} carries permissions you do not hold: {', '.join(missing)}",
                      kind="privilege-escalation", permission=missing[0])


# --- passwords -----------------------------------------------------------------------------


def check_password(password: str, email: str | None = None) -> None:
    """The password policy; 422 naming the ``password`` field."""
    if len(password) < 12:
        raise invalid("password", "must be at least 12 characters long")
    if len(password) > 256:
        raise invalid("password", "must be at most 256 characters long")
    if not re.search(r"[A-Za-z]", password) or not re.search(r"[^A-Za-z]", password):
        raise invalid("password", "must contain letters and digits or symbols")
    if len(set(password)) < 5:
        raise invalid("password", "is too repetitive")
    if email and email.split("@", 1)[0].lower() in password.lower() and len(email.split("@", 1)[0]) >= 4:
        raise invalid("password", "must not contain the email address")



# --- roles ---------------------------------------------------------------------------------


async def ensure_builtin_roles(conn, ctx) -> None:
    """The built-in roles exist: inserted on the caller's connection, and remembered once that
    commits, so that a caller's rollback cannot leave them out. (A transaction of its own
    took a second connection while the caller held one: with every connection of the pool
    so held, each waited for another forever.)"""
    if ctx.extra.get("admin_rbac.seeded"):
        return
    await conn.run(
        pg_insert(admin_roles)
        .values([{"id": uuid.uuid5(uuid.NAMESPACE_URL, f"myhibachi:role:{name}"), "name": name,
                  "description": desc, "permissions": [], "builtin": True}
                 for name, desc in BUILTIN_ROLES.items()])
        .on_conflict_do_nothing(index_elements=["name"])
    )

    def seeded() -> None:
        ctx.extra["admin_rbac.seeded"] = True

    if conn.in_transaction:
        conn.after_commit.append(seeded)
    else:
        seeded()


def role_out(ctx, row: Any) -> dict[str, Any]:
    return {**dict(row), "permissions": sorted(role_permissions(ctx, row))}


async def list_roles(conn, ctx) -> list[dict[str, Any]]:
    await ensure_builtin_roles(conn, ctx)
    rows = await conn.fetch_all(sa.select(admin_roles).order_by(admin_roles.c.builtin.desc(), admin_roles.c.name))
    return [role_out(ctx, r) for r in rows]


async def get_role(conn, ctx, role_id: uuid.UUID, *, lock: bool = False) -> Any:
    await ensure_builtin_roles(conn, ctx)
    query = sa.select(admin_roles).where(admin_roles.c.id == role_id)
    row = await conn.fetch_one(query.with_for_update() if lock else query)
    if row is None:
        raise not_found("Role")
    return row


async def create_role(conn, ctx, actor: Principal, *, name: str, description: str,
                      permissions: list[str]) -> dict[str, Any]:
    await ensure_builtin_roles(conn, ctx)
    permissions = check_permissions(ctx, permissions)
    require_grantable(actor, set(permissions), f"role {name}")
    try:
        async with conn.savepoint():
            row = await conn.fetch_one(sa.insert(admin_roles).values(
                id=uuid.uuid4(), name=name, description=description, permissions=permissions, builtin=False,
            ).returning(admin_roles))
    except IntegrityError:
        raise conflict(f"a role named {name} already exists", field="name") from None
    return role_out(ctx, row)


async def update_role(conn, ctx, actor: Principal, role_id: uuid.UUID, *, description: str | None,
                      permissions: list[str] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    row = await get_role(conn, ctx, role_id, lock=True)
    if row["builtin"]:
        raise conflict(f"the built-in role {row['name']} cannot be changed")
    values: dict[str, Any] = {}
    if description is not None:
        values["description"] = description
    if permissions is not None:
        permissions = check_permissions(ctx, permissions)
        # Both what is added and what is taken away must be within the actor's reach.
        require_grantable(actor, set(permissions) | set(row["permissions"]), f"role {row['name']}")
        values["permissions"] = permissions
    if not values:
        return role_out(ctx, row), {}
    new = await conn.fetch_one(sa.update(admin_roles).where(admin_roles.c.id == role_id)
                              .values(**values, updated_at=sa.func.now()).returning(admin_roles))
    return role_out(ctx, new), audit.diff(dict(row), dict(new), list(values))


async def delete_role(conn, ctx, actor: Principal, role_id: uuid.UUID) -> dict[str, Any]:
    row = await get_role(conn, ctx, role_id, lock=True)
    if row["builtin"]:
        raise conflict(f"the built-in role {row['name']} cannot be deleted")
    require_grantable(actor, set(row["permissions"]), f"role {row['name']}")
    await conn.run(sa.delete(admin_roles).where(admin_roles.c.id == role_id))
    return role_out(ctx, row)


# --- users ---------------------------------------------------------------------------------


def _user_query():
    names = (sa.select(sa.func.coalesce(sa.func.array_agg(aggregate_order_by(admin_roles.c.name, admin_roles.c.name)),
                                        sa.text("'{}'::varchar[]")))
             .select_from(admin_user_roles.join(admin_roles))
             .where(admin_user_roles.c.user_id == admin_users.c.id)
             .scalar_subquery())
    return sa.select(admin_users.c.id, admin_users.c.email, admin_users.c.name, admin_users.c.status,
                     admin_users.c.last_login, admin_users.c.created_at, admin_users.c.updated_at,
                     names.label("roles"))


def user_out(row: Any) -> dict[str, Any]:
    return {**dict(row), "roles": list(row["roles"] or [])}


async def get_user(conn, user_id: uuid.UUID, *, lock: bool = False) -> dict[str, Any]:
    if lock:
        found = await conn.fetch_one(sa.select(admin_users.c.id).where(admin_users.c.id == user_id)
                                     .with_for_update())
        if found is None:
            raise not_found("Admin user")
    row = await conn.fetch_one(_user_query().where(admin_users.c.id == user_id))
    if row is None:
        raise not_found("Admin user")
    return user_out(row)






async def list_users(conn, *, cursor: str | None, limit: int, status: str | None,
                     role: str | None) -> tuple[list[dict[str, Any]], str | None]:
    query = _user_query()
    if status:
        query = query.where(admin_users.c.status == status)
    if role:
        query = query.where(sa.exists().where(
            admin_user_roles.c.user_id == admin_users.c.id, admin_user_roles.c.role_id == admin_roles.c.id,
            admin_roles.c.name == role))
    rows, nxt = await fetch_page(conn, query, (admin_users.c.created_at, admin_users.c.id), limit=limit,
                                 cursor=cursor, descending=False)
    return [user_out(r) for r in rows], nxt


async def _roles_by_name(conn, ctx, names: list[str], field: str = "roles") -> list[Any]:
    await ensure_builtin_roles(conn, ctx)
    names = sorted(set(names))
    rows = await conn.fetch_all(sa.select(admin_roles).where(admin_roles.c.name.in_(names)))
    found = {r["name"] for r in rows}
    for i, name in enumerate(names):
        if name not in found:
            raise invalid(field, f"unknown role {name!r}")
    return list(rows)


async def user_permissions(conn, ctx, user_id: uuid.UUID) -> frozenset[str]:
    rows = await conn.fetch_all(sa.select(admin_roles).select_from(admin_user_roles.join(admin_roles))
                                .where(admin_user_roles.c.user_id == user_id))
    perms: set[str] = set()
    for row in rows:
        perms |= role_permissions(ctx, row)
    return frozenset(perms)


async def _require_outranks(conn, ctx, actor: Principal, user_id: uuid.UUID) -> None:
    missing = ungrantable(actor, await user_permissions(conn, ctx, user_id))
    if missing:
        raise Problem(403, "Forbidden", "this user holds permissions you do not hold: " + ", ".join(missing),
                      kind="privilege-escalation", permission=missing[0])


async def _other_active_super_admins(conn, user_id: uuid.UUID) -> int:
    await conn.run(sa.select(sa.func.pg_advisory_xact_lock(SUPER_ADMIN_LOCK)))
    return await conn.scalar(
        sa.select(sa.func.count()).select_from(admin_user_roles.join(admin_roles).join(admin_users))
        .where(admin_roles.c.name == SUPER_ADMIN, admin_roles.c.builtin.is_(True),
               admin_users.c.status == "active", admin_users.c.id != user_id)
    )


async def _is_super_admin(conn, user_id: uuid.UUID) -> bool:
    return await conn.scalar(
        sa.select(sa.func.count()).select_from(admin_user_roles.join(admin_roles))
        .where(admin_user_roles.c.user_id == user_id, admin_roles.c.name == SUPER_ADMIN,
               admin_roles.c.builtin.is_(True))
    ) > 0


async def create_user(conn, ctx, actor: Principal | None, *, email: str, name: str, password: str,
                      roles: list[str]) -> dict[str, Any]:
    """Create a staff account. ``actor`` None is the command line (trusted, no escalation check)."""
    email = email.strip().lower()
    check_password(password, email)
    role_rows = await _roles_by_name(conn, ctx, roles)
    if actor is not None:
        for row in role_rows:
            require_grantable(actor, role_permissions(ctx, row), f"role {row['name']}")
    user_id = uuid.uuid4()
    try:
        async with conn.savepoint():
            await conn.run(sa.insert(admin_users).values(
                id=user_id, email=email, name=name.strip(), password_hash=await hash_password(password)))
    except IntegrityError:
        raise conflict("an admin user with this email already exists", field="email") from None
    if role_rows:
        await conn.run(sa.insert(admin_user_roles), [{"user_id": user_id, "role_id": r["id"]} for r in role_rows])
    return await get_user(conn, user_id)


async def update_user(conn, ctx, actor: Principal, user_id: uuid.UUID, changes: dict[str, Any]
                      ) -> tuple[dict[str, Any], dict[str, Any]]:
    old = await get_user(conn, user_id, lock=True)
    await _require_outranks(conn, ctx, actor, user_id)
    values: dict[str, Any] = {}
    if changes.get("email") is not None:
        values["email"] = changes["email"].strip().lower()
    if changes.get("name") is not None:
        values["name"] = changes["name"].strip()
    if changes.get("password") is not None:
        check_password(changes["password"], values.get("email", old["email"]))
        values["password_hash"] = await hash_password(changes["password"])
    if changes.get("status") is not None and changes["status"] != old["status"]:
        if changes["status"] == "inactive":
            return await deactivate_user(conn, ctx, actor, user_id, values)
        values["status"] = changes["status"]
        values.update(failed_logins=0, failed_since=None, locked_until=None)
    if not values:
        return old, {}
    try:
        async with conn.savepoint():
            await conn.run(sa.update(admin_users).where(admin_users.c.id == user_id)
                               .values(**values, updated_at=sa.func.now()))
    except IntegrityError:
        raise conflict("an admin user with this email already exists", field="email") from None
    if "password_hash" in values:
        await revoke_sessions(conn, user_id)
    new = await get_user(conn, user_id)
    recorded = audit.diff(old, new, ["email", "name", "status"])
    if "password_hash" in values:
        recorded["password"] = {"old": audit.MASK, "new": audit.MASK}
    return new, recorded


async def deactivate_user(conn, ctx, actor: Principal, user_id: uuid.UUID, also: dict[str, Any] | None = None
                          ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Deactivate a staff account and revoke its sessions at once."""
    old = await get_user(conn, user_id, lock=True)
    await _require_outranks(conn, ctx, actor, user_id)
    if old["status"] != "inactive" and await _is_super_admin(conn, user_id) \
            and await _other_active_super_admins(conn, user_id) == 0:
        raise conflict("the last active super admin cannot be deactivated")
    await conn.run(sa.update(admin_users).where(admin_users.c.id == user_id)
                       .values(**(also or {}), status="inactive", updated_at=sa.func.now()))
    await revoke_sessions(conn, user_id)
    new = await get_user(conn, user_id)
    return new, audit.diff(old, new, ["email", "name", "status"])


async def set_roles(conn, ctx, actor: Principal, user_id: uuid.UUID, roles: list[str]
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    old = await get_user(conn, user_id, lock=True)
    await _require_outranks(conn, ctx, actor, user_id)
    rows = await _roles_by_name(conn, ctx, roles)
    current = set(old["roles"])
    wanted = {r["name"] for r in rows}
    for row in rows:
        if row["name"] not in current:
            require_grantable(actor, role_permissions(ctx, row), f"role {row['name']}")
    if SUPER_ADMIN in current and SUPER_ADMIN not in wanted and old["status"] == "active" \
            and await _other_active_super_admins(conn, user_id) == 0:
        raise conflict("the last active super admin cannot lose the super_admin role")
    await conn.run(sa.delete(admin_user_roles).where(admin_user_roles.c.user_id == user_id))
    if rows:
        await conn.run(sa.insert(admin_user_roles), [{"user_id": user_id, "role_id": r["id"]} for r in rows])
    new = await get_user(conn, user_id)
    return new, audit.diff(old, new, ["roles"])


# --- sessions and login --------------------------------------------------------------------


async def revoke_sessions(conn, user_id: uuid.UUID) -> None:
    await conn.run(sa.update(admin_sessions)
                       .where(admin_sessions.c.user_id == user_id, admin_sessions.c.revoked_at.is_(None))
                       .values(revoked_at=sa.func.now()))


def _login_failed() -> Problem:
    return Problem(401, "Unauthorized", "the email or password is wrong", kind="invalid-credentials")


async def login(ctx, *, email: str, password: str, ip: str | None, user_agent: str | None) -> dict[str, Any]:
    """Check a staff password; a failure is counted (and committed) even though it raises."""
    email = email.strip().lower()
    now = utcnow()
    failure: Problem | None = None
    async with ctx.db.transaction() as conn:
        row = await conn.fetch_one(sa.select(admin_users).where(admin_users.c.email == email)
                                  .with_for_update())
        if row is None:
            await verify_password(None, password)
            raise _login_failed()
        # no account lock (anyone could keep one locked): the route backs off per account and source
        if not await verify_password(row["password_hash"], password) or row["status"] != "active":
            fresh = row["failed_since"] is None or row["failed_since"] <= now - FAILURE_WINDOW
            count = 1 if fresh else row["failed_logins"] + 1
            await conn.run(sa.update(admin_users).where(admin_users.c.id == row["id"]).values(
                failed_logins=count, failed_since=now if fresh else row["failed_since"]))
            if count == MAX_FAILURES:
                await audit.record(conn, ctx, action="admin_auth.lockout", resource_type="admin_user",
                                   resource_id=row["id"], changes={"failed_logins": {"old": count - 1, "new": count}})
            failure = _login_failed()
        else:
            values: dict[str, Any] = {"last_login": now, "failed_logins": 0, "failed_since": None, "locked_until": None}
            if needs_rehash(row["password_hash"]):
                values["password_hash"] = await hash_password(password)
            await conn.run(sa.update(admin_users).where(admin_users.c.id == row["id"]).values(**values))
            session_id = uuid.uuid4()
            await conn.run(sa.insert(admin_sessions).values(
                id=session_id, user_id=row["id"], expires_at=now + SESSION_LIFETIME, ip=ip,
                user_agent=(user_agent or "")[:1000] or None))
            await audit.record(conn, ctx, action="admin_auth.login", resource_type="admin_session",
                               resource_id=session_id, actor=Principal("admin", str(row["id"])))
            user = await get_user(conn, row["id"])
    if failure is not None:
        raise failure
    token, lifetime = issue_access_token(ctx.settings, subject=str(user["id"]), kind="admin", session=str(session_id))
    return {"access_token": token, "token_type": "bearer", "expires_in": lifetime, "user": user}


def refresh(ctx, principal: Principal) -> dict[str, Any]:
    """A fresh access token for a live admin session (the resolver already checked it)."""
    token, lifetime = issue_access_token(ctx.settings, subject=principal.id, kind="admin", session=principal.session)
    return {"access_token": token, "token_type": "bearer", "expires_in": lifetime}


async def logout(ctx, principal: Principal) -> None:
    async with ctx.db.transaction() as conn:
        await conn.run(sa.update(admin_sessions)
                           .where(admin_sessions.c.id == uuid.UUID(principal.session), admin_sessions.c.revoked_at.is_(None))
                           .values(revoked_at=sa.func.now()))


async def principal_for(ctx, claims: dict[str, Any]) -> Principal | None:
    """The admin behind a token: only while its session is live and the user active."""
    try:
        user_id, session_id = uuid.UUID(str(claims["sub"])), uuid.UUID(str(claims["sid"]))
    except (KeyError, ValueError):
        return None
    query = (
        sa.select(admin_users.c.status, admin_sessions.c.expires_at, admin_sessions.c.revoked_at,
                  admin_roles.c.name, admin_roles.c.builtin, admin_roles.c.permissions)
        .select_from(admin_sessions.join(admin_users, admin_users.c.id == admin_sessions.c.user_id)
                     .outerjoin(admin_user_roles, admin_user_roles.c.user_id == admin_users.c.id)
                     .outerjoin(admin_roles, admin_roles.c.id == admin_user_roles.c.role_id))
        .where(admin_sessions.c.id == session_id, admin_sessions.c.user_id == user_id)
    )
    async with ctx.db.read() as conn:
        rows = await conn.fetch_all(query)
    if not rows:
        return None
    first = rows[0]
    if first["status"] != "active" or first["revoked_at"] is not None or first["expires_at"] <= utcnow():
        return None
    perms: set[str] = set()
    for row in rows:
        if row["name"] is not None:
            perms |= role_permissions(ctx, row)
    return Principal("admin", str(user_id), frozenset(perms), str(session_id))


async def purge_sessions(conn, older_than: timedelta = timedelta(days=7)) -> int:
    """Delete sessions that ended (expired or revoked) more than ``older_than`` ago."""
    cutoff = utcnow() - older_than
    return await conn.run(sa.delete(admin_sessions).where(
        sa.or_(admin_sessions.c.expires_at < cutoff, admin_sessions.c.revoked_at < cutoff)))
