"""Principals, tokens and permission checks.

Every request gets one ``Principal`` (decoded once, cached on the request): a customer or
admin from a JWT, a machine from an API key (``Bearer mh_...``), or anonymous. Admin routes
declare their permission with ``Depends(require("bookings.read"))``; default deny.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import jwt
import sqlalchemy as sa
from fastapi import Request

from myhibachi.core.errors import Problem, not_found

ALGORITHM = "HS256"
API_KEY_PREFIX = "mh_"
REFRESH_PREFIX = "rt_"
LAST_USED_GRANULARITY = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    kind: str  # anonymous | customer | admin | api_key
    id: str | None = None
    permissions: frozenset[str] = field(default_factory=frozenset)
    session: str | None = None
    remote: str | None = None

    @property
    def is_anonymous(self) -> bool:
        return self.kind == "anonymous"

    @property
    def is_staff(self) -> bool:
        return self.kind in ("admin", "api_key")

    def can(self, permission: str) -> bool:
        return has_permission(self.permissions, permission)

    def flag_context(self) -> dict[str, Any]:
        """The Unleash context: sticky by user id, else session, else remote address."""
        user = self.id or self.session or self.remote or "anonymous"
        ctx: dict[str, Any] = {"userId": user}
        if self.session:
            ctx["sessionId"] = self.session
        if self.remote:
            ctx["remoteAddress"] = self.remote
        return ctx


ANONYMOUS = Principal("anonymous")


def has_permission(granted: frozenset[str] | set[str], permission: str) -> bool:
    """``*`` grants all; ``area.*`` grants every ``area.x``; otherwise an exact match."""
    if "*" in granted or permission in granted:
        return True
    area = permission.split(".", 1)[0]
    return f"{area}.*" in granted


def check_owner_or(principal: Principal, owner_id: Any, permission: str, resource: str) -> None:
    """A customer reaches only their own ``resource`` (another's answers 404, as if it did not
    exist); anyone else needs ``permission`` (403 naming it)."""
    if principal.kind == "customer":
        if str(owner_id) != principal.id:
            raise not_found(resource)
        return
    if not principal.can(permission):
        raise Problem(403, "Forbidden", f"missing permission {permission}", kind="forbidden", permission=permission)


def permission_matches_known(permission: str, known: set[str]) -> bool:
    """True when a granted string (maybe a wildcard) names at least one known permission."""
    if permission == "*":
        return True
    if permission.endswith(".*"):
        area = permission[:-2]
        return any(k.split(".", 1)[0] == area for k in known)
    return permission in known


# --- tokens ------------------------------------------------------------------------------


def issue_access_token(settings, *, subject: str, kind: str, session: str | None = None,
                       extra: dict[str, Any] | None = None) -> tuple[str, int]:
    """A short-lived signed access token and its lifetime in seconds."""
    lifetime = settings.access_token_minutes * 60
    now = datetime.now(timezone.utc)
    claims = {
        "sub": subject,
        "kind": kind,
        "sid": session or uuid.uuid4().hex,
        "iat": now,
        "exp": now + timedelta(seconds=lifetime),
        "jti": uuid.uuid4().hex,
    }
    if extra:
        claims.update(extra)
    return jwt.encode(claims, settings.signing_key, algorithm=ALGORITHM), lifetime


# Tokens whose signature checked out, until they expire: a client sends the same token for
# its whole lifetime, and checking it (PyJWT: base64, JSON, HMAC) was a tenth of a cheap
# request. Only good signatures get in, so the size is bounded by the tokens we issued.
_VERIFIED: dict[tuple[str, str], dict[str, Any]] = {}
VERIFIED_MAX = 20_000


def decode_access_token(settings, token: str) -> dict[str, Any]:
    key = (settings.signing_key, token)
    claims = _VERIFIED.get(key)
    if claims is not None:
        if claims["exp"] > time.time():
            return claims
        del _VERIFIED[key]
    try:
        claims = jwt.decode(token, settings.signing_key, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]})
    except jwt.ExpiredSignatureError as exc:
        raise Problem(401, "Unauthorized", "the access token has expired", kind="token-expired",
                      headers={"WWW-Authenticate": "Bearer"}) from exc
    except jwt.PyJWTError as exc:
        raise Problem(401, "Unauthorized", "the access token is not valid", kind="invalid-token",
                      headers={"WWW-Authenticate": "Bearer"}) from exc
    if len(_VERIFIED) >= VERIFIED_MAX:
        _VERIFIED.clear()
    _VERIFIED[key] = claims
    return claims


def token_hash(settings, token: str) -> bytes:
    return hmac.new(settings.signing_key.encode(), token.encode(), hashlib.sha256).digest()


def new_api_key() -> tuple[str, str]:
    """A fresh API key and its lookup prefix; only the hash of the key is stored."""
    prefix = secrets.token_hex(4)
    return f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}", prefix


async def create_api_key(conn, settings, *, name: str, scopes: list[str], created_by: str | None = None,
                         expires_at: datetime | None = None) -> tuple[str, dict[str, Any]]:
    from myhibachi.core.models import api_keys

    key, prefix = new_api_key()
    row = await conn.fetch_one(
        sa.insert(api_keys).values(
            id=uuid.uuid4(), name=name, prefix=prefix, key_hash=token_hash(settings, key), scopes=scopes,
            created_by=created_by, expires_at=expires_at,
        ).returning(api_keys)
    )
    return key, dict(row)


_KEY_VIEW = ("id", "name", "prefix", "scopes", "created_by", "expires_at", "revoked_at", "last_used_at",
             "created_at")


async def list_api_keys(conn, *, limit: int = 50, cursor: str | None = None,
                        ) -> tuple[list[dict[str, Any]], str | None]:
    """Every API key, newest first, without its hash."""
    from myhibachi.core.models import api_keys
    from myhibachi.core.pagination import fetch_page

    query = sa.select(*(api_keys.c[c] for c in _KEY_VIEW))
    return await fetch_page(conn, query, (api_keys.c.created_at, api_keys.c.id), limit=limit, cursor=cursor)


async def revoke_api_key(conn, key_id: uuid.UUID) -> dict[str, Any] | None:
    """Revoke a key, refused from its next request on (keys are read on every request);
    None when there is no such key. Revoking a revoked key keeps its first revocation time."""
    from myhibachi.core.models import api_keys

    row = await conn.fetch_one(
        sa.update(api_keys).where(api_keys.c.id == key_id)
        .values(revoked_at=sa.func.coalesce(api_keys.c.revoked_at, sa.func.now()))
        .returning(*(api_keys.c[c] for c in _KEY_VIEW)))
    return dict(row) if row else None


@functools.cache
def _key_by_prefix():
    from myhibachi.core.models import api_keys

    return sa.select(api_keys).where(api_keys.c.prefix == sa.bindparam("prefix"))


async def principal_from_api_key(conn, settings, key: str) -> Principal | None:
    from myhibachi.core.models import api_keys

    try:
        prefix = key[len(API_KEY_PREFIX):].split("_", 1)[0]
    except IndexError:
        return None
    row = await conn.fetch_one(_key_by_prefix(), {"prefix": prefix})
    if row is None or not hmac.compare_digest(row["key_hash"], token_hash(settings, key)):
        return None
    now = datetime.now(timezone.utc)
    if row["revoked_at"] is not None or (row["expires_at"] is not None and row["expires_at"] <= now):
        return None
    # At most one write a minute per key, so a busy machine client does not write on every request.
    if row["last_used_at"] is None or now - row["last_used_at"] >= LAST_USED_GRANULARITY:
        await conn.run(sa.update(api_keys).where(api_keys.c.id == row["id"]).values(last_used_at=now))
    return Principal("api_key", str(row["id"]), frozenset(row["scopes"]))


# --- refresh tokens ----------------------------------------------------------------------
# Opaque, stored hashed, usable once: each use returns a new token of the same family. A
# used token presented again means it leaked (or a client replayed it), so its whole family
# is revoked and every holder must sign in again.


async def issue_refresh_token(conn, settings, *, subject: str, kind: str, family: uuid.UUID | None = None) -> str:
    from myhibachi.core.models import refresh_tokens

    token = REFRESH_PREFIX + secrets.token_urlsafe(32)
    await conn.run(sa.insert(refresh_tokens).values(
        id=uuid.uuid4(), subject=subject, kind=kind, token_hash=token_hash(settings, token),
        family=family or uuid.uuid4(),
        expires_at=datetime.now(timezone.utc) + timedelta(days=settings.refresh_token_days),
    ))
    return token


async def issue_session(conn, settings, *, subject: str, kind: str, family: uuid.UUID | None = None) -> dict[str, Any]:
    """A new access token and refresh token: the body of a sign-in or refresh response."""
    family = family or uuid.uuid4()
    refresh = await issue_refresh_token(conn, settings, subject=subject, kind=kind, family=family)
    access, lifetime = issue_access_token(settings, subject=subject, kind=kind, session=family.hex)
    return {"access_token": access, "token_type": "bearer", "expires_in": lifetime, "refresh_token": refresh}


async def use_refresh_token(conn, settings, token: str, cache=None) -> dict[str, Any] | None:
    """Spend a refresh token: ``{subject, kind, family}``, or None when it is not valid now.

    Presenting a spent token revokes its family; the caller must commit even though it
    refuses the request.
    """
    from myhibachi.core.models import refresh_tokens

    digest = token_hash(settings, token)
    t = refresh_tokens.c
    row = await conn.fetch_one(
        sa.update(refresh_tokens)
        .where(t.token_hash == digest, t.used_at.is_(None), t.revoked_at.is_(None), t.expires_at > sa.func.now())
        .values(used_at=sa.func.now())
        .returning(t.subject, t.kind, t.family)
    )
    if row is not None:
        return dict(row)
    spent = await conn.scalar(
        sa.select(t.family).where(t.token_hash == digest, t.used_at.is_not(None)))
    if spent is not None:
        await revoke_family(conn, spent, cache)
    return None


async def revoke_family(conn, family: uuid.UUID, cache=None) -> None:
    """Revoke every refresh token of ``family``; its access tokens are refused once this
    commits (pass the app's ``ctx.cache`` so every process drops what it knew of sessions)."""
    from myhibachi.core.models import refresh_tokens

    t = refresh_tokens.c
    await conn.run(sa.update(refresh_tokens).where(t.family == family, t.revoked_at.is_(None))
                       .values(revoked_at=sa.func.now()))
    if cache is not None:
        await cache.changed(conn, SESSIONS)


async def revoke_subject(conn, subject: str, kind: str, cache=None) -> None:
    """Revoke every session of one person (a disabled customer)."""
    from myhibachi.core.models import refresh_tokens

    t = refresh_tokens.c
    await conn.run(sa.update(refresh_tokens).where(t.subject == subject, t.kind == kind, t.revoked_at.is_(None))
                       .values(revoked_at=sa.func.now()))
    if cache is not None:
        await cache.changed(conn, SESSIONS)


# Whether an access token's session (``sid``, its refresh family) was revoked: asked on
# every customer request, so answered from the shared cache, which every revocation empties
# in every process when it commits.
SESSIONS = "auth.sessions"


@functools.cache
def _family_revoked():
    from myhibachi.core.models import refresh_tokens

    t = refresh_tokens.c
    return sa.select(sa.exists().where(t.family == sa.bindparam("family"), t.revoked_at.is_not(None)))


async def session_revoked(ctx, sid: str | None) -> bool:
    """True when ``sid`` names a refresh family that was revoked (sign-out, reuse, disabling)."""
    try:
        family = uuid.UUID(sid)
    except (TypeError, ValueError):
        return False  # not a family: a token issued without a refresh token

    async def load() -> bool:
        async with ctx.db.read() as conn:
            return bool(await conn.scalar(_family_revoked(), {"family": family}))

    return await ctx.cache.get(SESSIONS, family, load)


async def revoke_refresh_token(conn, settings, token: str, cache=None) -> bool:
    """Sign out: revoke the token's whole family. False when the token is unknown."""
    from myhibachi.core.models import refresh_tokens

    family = await conn.scalar(sa.select(refresh_tokens.c.family)
                                 .where(refresh_tokens.c.token_hash == token_hash(settings, token)))
    if family is None:
        return False
    await revoke_family(conn, family, cache)
    return True


# --- request dependencies ------------------------------------------------------------------


def _remote(request: Request) -> str | None:
    from myhibachi.core.ratelimit import client_address

    return client_address(request) if request.client else None


async def current_principal(request: Request) -> Principal:
    """The caller, decoded once per request and reused by the flag gate and routes."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    ctx = request.app.state.ctx
    header = request.headers.get("authorization")
    remote = _remote(request)
    session = request.headers.get("x-session-id")
    if not header:
        principal = Principal("anonymous", session=session, remote=remote)
    else:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Problem(401, "Unauthorized", "use 'Authorization: Bearer <token>'", kind="invalid-token",
                          headers={"WWW-Authenticate": "Bearer"})
        if token.startswith(API_KEY_PREFIX):
            async with ctx.db.transaction() as conn:
                principal = await principal_from_api_key(conn, ctx.settings, token)
            if principal is None:
                raise Problem(401, "Unauthorized", "the API key is not valid", kind="invalid-token",
                              headers={"WWW-Authenticate": "Bearer"})
        else:
            claims = decode_access_token(ctx.settings, token)
            if claims.get("kind") == "customer":
                if await session_revoked(ctx, claims.get("sid")):
                    raise Problem(401, "Unauthorized", "the session has ended; sign in again", kind="invalid-token",
                                  headers={"WWW-Authenticate": "Bearer"})
                principal = Principal("customer", claims["sub"], frozenset(), claims.get("sid"), remote)
            else:
                # The flag context is the token's subject, as the flag gate's will be.
                principal = await ctx.hooks({"userId": str(claims["sub"])}).resolve_principal(claims=claims)
                if principal is None:
                    raise Problem(401, "Unauthorized", "the session is no longer valid", kind="invalid-token",
                                  headers={"WWW-Authenticate": "Bearer"})
    request.state.principal = principal
    return principal


def require(permission: str):
    """Dependency: the caller must hold ``permission`` (401 when anonymous, 403 otherwise)."""

    async def dependency(request: Request) -> Principal:
        principal = await current_principal(request)
        if principal.is_anonymous:
            raise Problem(401, "Unauthorized", f"this route requires the permission {permission}",
                          kind="unauthenticated", permission=permission, headers={"WWW-Authenticate": "Bearer"})
        if not principal.can(permission):
            raise Problem(403, "Forbidden", f"missing permission {permission}", kind="forbidden",
                          permission=permission)
        return principal

    dependency.permission = permission  # read by the route walk and the audit trail
    return dependency


# These take the request, not ``Depends(current_principal)``: a dependency of a dependency
# costs every request FastAPI's work for one more level, and the principal is kept on the
# request anyway.
async def authenticated(request: Request) -> Principal:
    """Dependency: any signed-in caller."""
    principal = await current_principal(request)
    if principal.is_anonymous:
        raise Problem(401, "Unauthorized", "sign in first", kind="unauthenticated",
                      headers={"WWW-Authenticate": "Bearer"})
    return principal


async def current_customer(request: Request) -> Principal:
    """Dependency: a signed-in customer (401 when anonymous, 403 for staff and machines)."""
    principal = await current_principal(request)
    if principal.is_anonymous:
        raise Problem(401, "Unauthorized", "sign in first", kind="unauthenticated",
                      headers={"WWW-Authenticate": "Bearer"})
    if principal.kind != "customer":
        raise Problem(403, "Forbidden", "only a signed-in customer has a profile", kind="forbidden")
    return principal


def route_permission(route) -> str | None:
    """The permission an APIRoute requires, found on its dependencies."""
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        perm = getattr(dep.call, "permission", None)
        if perm:
            return perm
        stack.extend(dep.dependencies)
    return None


def api_routes(app) -> list:
    """Every API route as mounted: full path, methods, and dependencies of the includes applied."""
    from fastapi.routing import APIRoute

    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before lazily included routers: app.routes is already flat
        return [r for r in app.routes if isinstance(r, APIRoute)]
    return [rc for rc in iter_route_contexts(app.routes) if isinstance(rc.original_route, APIRoute)]
