"""The audit trail of staff actions, as the core offers it to routes and plugins.

Every state-changing request (POST, PUT, PATCH, DELETE) by a staff principal (an admin or
an API key) is recorded without the route writing anything, whether the route declares its
permission or checks it in its service: the core calls the ``record_admin_action`` hook once per recorded action.

* Routes that take ``conn: Conn = Connection`` get the hook called on that connection
  just before the request's transaction commits (a ``before_commit`` callback the core's
  route class adds), so the change and its audit record commit or roll back together.
  A route that raises records nothing.
* Routes without a connection are recorded after a successful response, in a
  transaction of their own: the record is kept, but not atomically with the change.

A route may describe what it changed with :func:`note_change` (resource, id, the changed
fields). When it notes nothing, one action is recorded: method and route path, the
route's permission, and the path parameters as the resource. Service functions called
outside a request (CLI, tasks) can be marked with :func:`audited`. PII fields are masked
here, before any recorder sees them.
"""
from __future__ import annotations

import functools
import inspect
import logging
from contextvars import ContextVar
from typing import Any, Callable

from myhibachi.core.auth import Principal, route_permission
from myhibachi.core.db import utcnow

log = logging.getLogger("myhibachi.audit")

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
VERBS = {"POST": "create", "PUT": "update", "PATCH": "update", "DELETE": "delete"}
MASK = "***"
PII_FIELDS = frozenset({
    "email", "phone", "name", "first_name", "last_name", "full_name", "address", "street", "city",
    "zip_code", "postal_code", "password", "password_hash", "new_password", "date_of_birth", "ssn",
    "token", "secret", "api_key", "card_number",
})
SYSTEM = Principal("system", "system")

_request: ContextVar[Any] = ContextVar("myhibachi_audit_request", default=None)


def is_pii(field: str) -> bool:
    name = field.lower()
    return name in PII_FIELDS or name.endswith(("_email", "_phone", "_name", "_address", "_password"))


def mask_changes(changes: dict[str, Any] | None) -> dict[str, Any] | None:
    """``{"field": {"old", "new"}}`` with the values of PII fields replaced by a mask."""
    if changes is None:
        return None
    out: dict[str, Any] = {}
    for field, change in changes.items():
        if is_pii(field):
            if isinstance(change, dict) and ("old" in change or "new" in change):
                out[field] = {k: (MASK if change.get(k) is not None else None) for k in ("old", "new")}
            else:
                out[field] = MASK
        else:
            out[field] = change
    return out


def diff(old: dict[str, Any] | None, new: dict[str, Any] | None, fields: list[str] | None = None) -> dict[str, Any]:
    """The fields that differ between two plain-data versions of a resource, masked."""
    old, new = old or {}, new or {}
    names = fields or sorted(set(old) | set(new))
    changes = {f: {"old": old.get(f), "new": new.get(f)} for f in names if old.get(f) != new.get(f)}
    return mask_changes(changes)


def note_change(request, resource_type: str, resource_id: Any, changes: dict[str, Any] | None = None,
                action: str | None = None) -> None:
    """Describe one change this request made; recorded when the request's transaction commits.

    :param changes: ``{"field": {"old": ..., "new": ...}}``; PII values are masked here.
    :param action: defaults to ``<resource_type>.<create|update|delete>`` from the method.
    """
    notes = getattr(request.state, "audit_notes", None)
    if notes is None:
        notes = request.state.audit_notes = []
    notes.append({
        "action": action or f"{resource_type}.{VERBS.get(request.method, request.method.lower())}",
        "resource_type": resource_type,
        "resource_id": None if resource_id is None else str(resource_id),
        "changes": mask_changes(changes),
    })


def _permission(route) -> str | None:
    if route is None:
        return None
    try:
        return route._audit_permission
    except AttributeError:
        route._audit_permission = route_permission(route) if hasattr(route, "dependant") else None
        return route._audit_permission


def _template(path: str, params: dict[str, Any]) -> str:
    """``/v1/things/42`` back to ``/v1/things/{thing_id}``, so one action reads the same each time."""
    names = {str(v): k for k, v in params.items()}
    return "/".join("{%s}" % names[seg] if seg in names else seg for seg in path.split("/"))


def _resource_type(path: str, permission: str | None) -> str:
    if permission:
        return permission.split(".", 1)[0]
    parts = [p for p in path.split("/") if p and p != "v1" and not p.startswith("{")]
    return parts[0] if parts else "unknown"


def _entries(scope: dict[str, Any], principal: Principal, permission: str | None) -> list[dict[str, Any]]:
    state = scope.get("state", {})
    method = scope["method"]
    headers = dict(scope.get("headers") or [])
    client = scope.get("client")
    base = {
        "actor_kind": principal.kind,
        "actor_id": principal.id,
        "permission": permission,
        "method": method,
        "path": scope.get("path"),
        "ip": client[0] if client else None,
        "user_agent": headers.get(b"user-agent", b"").decode("latin-1") or None,
        "request_id": state.get("request_id"),
        "at": utcnow(),
    }
    notes = state.get("audit_notes")
    if not notes:
        params = scope.get("path_params") or {}
        resource_id = None
        if len(params) == 1:
            resource_id = str(next(iter(params.values())))
        elif params:
            resource_id = ",".join(f"{k}={v}" for k, v in params.items())
        notes = [{"action": f"{method} {_template(scope.get('path', ''), params)}",
                  "resource_type": _resource_type(scope.get("path", ""), permission), "resource_id": resource_id,
                  "changes": None}]
    return [{**base, **note} for note in notes]


def _staff_action(scope: dict[str, Any]) -> tuple[Principal, str | None] | None:
    """A state-changing request by staff: recorded whether its route declares a permission
    or checks one in its service (as routes open to customers and staff do)."""
    if scope.get("method") not in STATE_CHANGING:
        return None
    state = scope.get("state") or {}
    principal = state.get("principal")
    if principal is None or not principal.is_staff or state.get("audit_recorded"):
        return None
    return principal, _permission(scope.get("route"))


async def _call(ctx, conn, principal: Principal, entries: list[dict[str, Any]]) -> None:
    hooks = ctx.hooks(principal.flag_context())
    for entry in entries:
        await hooks.record_admin_action(conn=conn, action=entry)


async def before_commit(request, conn) -> None:
    """Called just before a route's transaction commits: record in that transaction."""
    scope = request.scope
    found = _staff_action(scope)
    if found is None:
        return
    principal, permission = found
    scope["state"]["audit_recorded"] = True
    await _call(request.app.state.ctx, conn, principal, _entries(scope, principal, permission))


async def after_response(scope: dict[str, Any], status: int) -> None:
    """Called by the core middleware: record actions of routes without a connection, and
    staff writes refused 403 (a missing permission, an escalation) as ``refused <action>``."""
    if status >= 400 and status != 403:
        return
    found = _staff_action(scope)
    if found is None:
        return
    principal, permission = found
    ctx = scope["app"].state.ctx
    entries = _entries(scope, principal, permission)
    if status == 403:  # what was refused, not what it would have changed
        entries = [{**e, "action": f"refused {e['action']}"[:200], "changes": None} for e in entries]
    try:
        async with ctx.db.transaction() as conn:
            await _call(ctx, conn, principal, entries)
    except Exception:
        log.exception("could not record the audit trail of %s %s", scope["method"], scope.get("path"))


def bind_request(request):
    """Make ``request`` the one :func:`audited` calls note their changes on (set by the route class)."""
    return _request.set(request)


def unbind_request(token) -> None:
    try:
        _request.reset(token)
    except ValueError:  # the dependency was closed from another context; that context ends with it
        pass


async def record(conn, ctx, *, action: str, resource_type: str, resource_id: Any = None,
                 changes: dict[str, Any] | None = None, actor: Principal | None = None) -> None:
    """Record one action now, in ``conn``'s transaction (for work done outside a request)."""
    actor = actor or SYSTEM
    entry = {
        "actor_kind": actor.kind, "actor_id": actor.id, "permission": None, "method": None, "path": None,
        "ip": None, "user_agent": None, "request_id": None, "at": utcnow(), "action": action,
        "resource_type": resource_type, "resource_id": None if resource_id is None else str(resource_id),
        "changes": mask_changes(changes),
    }
    await _call(ctx, conn, actor, [entry])


def audited(resource_type: str, *, action: str | None = None, id_arg: str = "id") -> Callable:
    """Mark an async service function as an audited action.

    Inside a request's transaction the call is noted on the request (recorded with it,
    in its transaction). Elsewhere it is recorded at once on the function's ``conn``
    argument, with the ``actor`` argument (a Principal) or the system as the actor; the
    function must then take ``conn`` and ``ctx``. The resource id is the argument named
    ``id_arg``, else the ``id`` of the returned mapping.
    """

    def decorate(fn):
        signature = inspect.signature(fn)
        name = action or f"{resource_type}.{fn.__name__}"

        @functools.wraps(fn)
        async def wrapper(*args, **kwargs):
            result = await fn(*args, **kwargs)
            bound = signature.bind_partial(*args, **kwargs).arguments
            resource_id = bound.get(id_arg)
            if resource_id is None and isinstance(result, dict):
                resource_id = result.get("id")
            request = _request.get()
            if request is not None and getattr(request.state, "conn", None) is bound.get("conn", request.state.conn):
                note_change(request, resource_type, resource_id, action=name)
            else:
                actor = bound.get("actor") or (getattr(request.state, "principal", None) if request else None)
                await record(bound["conn"], bound["ctx"], action=name, resource_type=resource_type,
                             resource_id=resource_id, actor=actor)
            return result

        return wrapper

    return decorate
