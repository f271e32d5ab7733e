"""``Idempotency-Key`` for POST routes that move money or send a message.

A route opts in with one line, ``@idempotent`` under its ``@router.post(...)``; the header
is then required (and documented as such in OpenAPI), or optional with
``@idempotent(required=False)``. Keys are scoped per principal. The first response is stored
with a fingerprint of the request (method, path, principal, body hash) in the route's own
transaction (its ``conn: Conn = Connection``; the decorator asks for one when the route does
not), so an effect never commits without its record; work a route does on other
connections is serialised by the key but not made atomic with it:

- a retry with the same key answers the stored status and body (``Idempotent-Replayed: true``)
  without running the route again;
- the same key with a different request is a 422 problem;
- the same key while the first request is still running is a 409 problem (``Retry-After``);
- a route that fails stores nothing (its effects rolled back too), so a retry runs again;
- keys expire after 24 hours (``purge_expired``, the core's periodic job).

The stored body is sealed (AES-GCM under the vault's current key, bound to its scope and key):
responses carry customers' emails, phone numbers, addresses and messages.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import json
from datetime import timedelta
from typing import Any, Callable

import sqlalchemy as sa
from fastapi import Header, Request
from fastapi.responses import JSONResponse, Response
from pydantic import TypeAdapter
from sqlalchemy.dialects.postgresql import insert as pg_insert

from myhibachi.core.auth import Principal, current_principal
from myhibachi.core.db import Conn
from myhibachi.core.errors import Problem
from myhibachi.core.models import idempotency_keys

HEADER = "Idempotency-Key"
TTL = timedelta(hours=24)
PURGE_EVERY = 600.0  # seconds between two purges (one worker runs each)

_adapters: dict[Any, TypeAdapter] = {}


def scope_of(principal: Principal) -> str:
    """Keys of different callers never meet: a customer, an admin, a machine, an anonymous address."""
    if principal.id:
        return f"{principal.kind}:{principal.id}"
    return f"anonymous:{principal.session or principal.remote or '-'}"


def fingerprint(method: str, path: str, scope: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), scope.encode(), hashlib.sha256(body).digest()):
        digest.update(len(part).to_bytes(4, "big") + part)
    return digest.hexdigest()


def _lock_id(scope: str, key: str) -> int:
    digest = hashlib.sha256(f"{len(scope)}:{scope}{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _serialize(request: Request, result: Any) -> tuple[int, Any]:
    """The status and JSON body FastAPI would have sent for ``result``."""
    if isinstance(result, Response):
        body = bytes(result.body or b"")
        return result.status_code, json.loads(body) if body else None
    route = request.scope.get("route")
    status = getattr(route, "status_code", None) or 200
    model = getattr(route, "response_model", None)
    if model is None:
        from fastapi.encoders import jsonable_encoder

        return status, jsonable_encoder(result)
    adapter = _adapters.get(model)
    if adapter is None:
        adapter = _adapters[model] = TypeAdapter(model)
    value = adapter.validate_python(result, from_attributes=True)
    return status, adapter.dump_python(value, mode="json")


SEALED = "$sealed"  # the stored form: {"$sealed": ciphertext, "key_id": key id, "id": the resource's id}


def _seal(request: Request, scope: str, key: str, body: Any) -> dict[str, str]:
    from myhibachi.core.crypto import vault

    v = vault(request.app.state.ctx)
    stored = v.seal_json(body, f"idempotency_keys:{scope}:{key}", SEALED)
    if isinstance(body, dict) and isinstance(body.get("id"), str):
        stored["id"] = body["id"]  # the resource's id stays readable: an id, not personal data
    return stored


def _unseal(request: Request, scope: str, key: str, stored: Any) -> Any:
    if not (isinstance(stored, dict) and SEALED in stored):
        return stored  # stored before responses were sealed (kept at most a day)
    from myhibachi.core.crypto import vault

    return vault(request.app.state.ctx).open_json(stored, f"idempotency_keys:{scope}:{key}", SEALED)


def _response(status: int, body: Any, replayed: bool) -> Response:
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    if body is None and status == 204:
        return Response(status_code=204, headers=headers)
    return JSONResponse(body, status_code=status, headers=headers)


def idempotent(func: Callable | None = None, *, required: bool = True):
    """Decorator for a POST route: honour ``Idempotency-Key`` (required unless ``required=False``)."""

    def decorate(func: Callable) -> Callable:
        if not inspect.iscoroutinefunction(func):
            raise TypeError(f"@idempotent needs an async route, not {func.__qualname__}")
        from myhibachi.core.routing import Connection

        signature = inspect.signature(func)
        # FastAPI hands the request to one parameter only, so the route's own one is passed on.
        wants_request = "request" in signature.parameters
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in signature.parameters.values()
               if p.name != "request"]
        conn_name = next((p.name for p in own if p.default is Connection), None)
        header = Header(
            ... if required else None, alias=HEADER, min_length=1, max_length=200,
            description="A unique value per operation (a UUID); a retry with the same key returns "
                        "the first response instead of acting twice. Kept for 24 hours.",
        )
        extra = [
            inspect.Parameter("idempotency_key_", inspect.Parameter.KEYWORD_ONLY,
                              annotation=str if required else str | None, default=header),
            inspect.Parameter("idempotency_request_", inspect.Parameter.KEYWORD_ONLY, annotation=Request),
        ]
        if conn_name is None:
            extra.append(inspect.Parameter("idempotency_conn_", inspect.Parameter.KEYWORD_ONLY, annotation=Conn,
                                           default=Connection))

        @functools.wraps(func)
        async def wrapper(*, idempotency_key_, idempotency_request_, **kwargs):
            if wants_request:
                kwargs["request"] = idempotency_request_
            conn = kwargs[conn_name] if conn_name else kwargs.pop("idempotency_conn_")
            if idempotency_key_ is None:
                return await func(**kwargs)
            principal = await current_principal(idempotency_request_)
            return await _once(func, kwargs, idempotency_request_, conn, principal, idempotency_key_)

        wrapper.__signature__ = signature.replace(parameters=own + extra)
        wrapper.idempotent = required
        return wrapper

    return decorate(func) if func is not None else decorate


async def _once(func, kwargs, request: Request, conn, principal: Principal, key: str) -> Response:
    scope = scope_of(principal)
    print_ = fingerprint(request.method, request.url.path, scope, await request.body())
    # Held until the transaction ends, that is until the stored response is committed.
    if not await conn.scalar(_TRY_LOCK, {"lock": _lock_id(scope, key)}):
        raise Problem(409, "Request in progress",
                      f"a request with this {HEADER} is still being processed; retry shortly",
                      kind="idempotency-in-progress", headers={"Retry-After": "1"})
    row = await conn.fetch_one(_STORED, {"scope": scope, "key": key})
    if row is not None:
        if row["fingerprint"] != print_:
            raise Problem(422, "Idempotency key reused", f"{HEADER} was already used for a different request",
                          kind="idempotency-mismatch",
                          errors=[{"field": HEADER, "message": "already used for a different request"}])
        request.state.audit_recorded = True  # a replay changes nothing: the first request was recorded
        return _response(row["status_code"], _unseal(request, scope, key, row["response"]), replayed=True)
    status, body = _serialize(request, await func(**kwargs))
    await conn.run(_STORE, {"scope": scope, "key": key, "fingerprint": print_, "status_code": status,
                            "response": _seal(request, scope, key, body)})
    return _response(status, body, replayed=False)


_TRY_LOCK = sa.select(sa.func.pg_try_advisory_xact_lock(sa.bindparam("lock", type_=sa.BigInteger)))
_STORED = (sa.select(idempotency_keys.c.fingerprint, idempotency_keys.c.status_code, idempotency_keys.c.response)
           .where(idempotency_keys.c.scope == sa.bindparam("scope"), idempotency_keys.c.key == sa.bindparam("key"),
                  idempotency_keys.c.expires_at > sa.func.now()))
_STORED_VALUES = {"fingerprint": sa.bindparam("fingerprint"), "status_code": sa.bindparam("status_code"),
                  "response": sa.bindparam("response", type_=idempotency_keys.c.response.type),
                  "created_at": sa.func.now(), "expires_at": sa.func.now() + TTL}
_STORE = (pg_insert(idempotency_keys).values(scope=sa.bindparam("scope"), key=sa.bindparam("key"), **_STORED_VALUES)
          .on_conflict_do_update(index_elements=["scope", "key"], set_=_STORED_VALUES))


async def purge_expired(conn) -> int:
    """Delete expired keys; returns how many (the core's periodic job ``core.idempotency_expiry``)."""
    return await conn.run(sa.delete(idempotency_keys).where(idempotency_keys.c.expires_at <= sa.func.now()))
