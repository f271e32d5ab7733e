"""The core's route class: a route's database connection, its plugin's flag gate, the audit hook.

A route that needs the database declares ``conn: Conn = Connection``. The route class sees that
when the app is built and opens the connection once the route's dependencies are solved,
around the endpoint: a transaction for POST, PUT, PATCH and DELETE (committed before the
response is sent, rolled back when the endpoint raises), an autocommit read connection
for GET and HEAD. It is not a dependency (a generator dependency costs ~0.1 ms of CPU a
request, a plain one ~25 us), so a route author makes no performance choice.

Just before a staff request's transaction commits, :func:`myhibachi.core.audit.before_commit`
records it on the same connection (a ``conn.before_commit`` callback), so a change and its
audit record commit together or not at all.
"""
from __future__ import annotations

import functools
import inspect
from types import MappingProxyType
from typing import Any, Callable

from fastapi import APIRouter, Depends, Request
from fastapi.dependencies.utils import get_typed_signature
from fastapi.routing import APIRoute
from starlette.routing import Match

from myhibachi.core import audit, ratelimit
from myhibachi.core.auth import Principal, current_principal
from myhibachi.core.errors import Problem, error_responses

READS = frozenset({"GET", "HEAD"})


class _ConnectionMarker:
    def __repr__(self) -> str:
        return "Connection"


# The request's connection, as a parameter's default: ``async def route(..., conn: Conn = Connection)``.
Connection: Any = _ConnectionMarker()


def _conn_param(signature: inspect.Signature) -> str | None:
    for p in signature.parameters.values():
        if p.default is Connection:
            return p.name
    return None


def connected(endpoint: Callable, methods) -> Callable:
    """``endpoint`` with its ``Connection`` parameter filled: opened once the route's
    dependencies are solved (the body read, the caller known), closed when it returns."""
    typed = get_typed_signature(endpoint)
    name = _conn_param(typed)
    if name is None:
        return endpoint
    reads = bool(methods) and not (set(methods) - READS)
    own_request = next((p.name for p in typed.parameters.values() if p.annotation is Request), None)
    params = [p for p in typed.parameters.values() if p.name != name]
    if own_request is None:
        params.append(inspect.Parameter("route_request_", inspect.Parameter.KEYWORD_ONLY, annotation=Request))

    @functools.wraps(endpoint)
    async def with_connection(**kwargs):
        request = kwargs[own_request] if own_request else kwargs.pop("route_request_")
        db = request.app.state.ctx.db
        if reads:
            async with db.read() as conn:
                request.state.conn = kwargs[name] = conn
                return await endpoint(**kwargs)
        async with db.transaction() as conn:
            request.state.conn = kwargs[name] = conn
            token = audit.bind_request(request)
            conn.before_commit.append(lambda: audit.before_commit(request, conn))
            try:
                request.state.made = made = await endpoint(**kwargs)  # its id is a 201's Location
                return made
            finally:
                audit.unbind_request(token)

    with_connection.__signature__ = typed.replace(parameters=params)
    return with_connection


_NO_MATCH = (Match.NONE, MappingProxyType({}))


def _path(scope) -> str:
    """The request's path below the app's root path, as the routes are matched against it."""
    path, root = scope["path"], scope.get("root_path")
    return path[len(root):] if root and path.startswith(root) else path


class Route(APIRoute):
    """Every core and plugin route: fills the ``conn: Conn = Connection`` its endpoint declares.

    The app's router tries its routes in turn, each with a regular expression; ``literal``
    (the path up to its first parameter, set when the app takes the route, see
    :func:`api_router`) refuses a path that cannot be this route's with one comparison, so
    the last plugin's routes are not found at the cost of seventy regular expressions.
    """

    literal = ""
    located = False  # a 201 answer carries ``Location``: its path and the made thing's id (see locate)

    def __init__(self, path: str, endpoint: Callable, **kwargs: Any) -> None:
        super().__init__(path, connected(endpoint, kwargs.get("methods")), **kwargs)

    def get_route_handler(self):
        handler = super().get_route_handler()
        if self.status_code != 201 or "POST" not in self.methods:
            return handler

        async def locating(request: Request):
            response = await handler(request)
            made = getattr(request.state, "made", None)
            made_id = made.get("id") if isinstance(made, dict) else getattr(made, "id", None)
            if self.located and response.status_code == 201 and made_id is not None:
                # the scope's path, not request.url: building the URL costs a create 20 µs
                response.headers["Location"] = f"{request.scope['path']}/{made_id}"
            return response

        return locating

    def matches(self, scope):
        if _path(scope).startswith(self.literal):
            return super().matches(scope)
        return _NO_MATCH  # one shared answer: a request to a late plugin's route gets a hundred


def api_router(app, prefix: str = "", **kwargs: Any) -> APIRouter:
    """A router of the API: under ``/v1``, behind the rate limit, its routes built with their
    final path and dependencies, so that the app takes them as they are (:func:`take`).
    FastAPI builds every route of an included router a second time for its inclusion
    (0.37 s of the start-up with every plugin), and matches a request in two passes."""
    kwargs.setdefault("route_class", Route)
    return APIRouter(prefix="/v1" + prefix, dependencies=[Depends(ratelimit.rate_limit)],
                     responses=error_responses(422, 429), dependency_overrides_provider=app, **kwargs)


def take(app, router: APIRouter) -> list:
    """Put the routes ``router`` built itself on the app's router; answer the others (a router
    a plugin included into its own, a route of another class), which the caller includes."""
    rest = []
    for route in router.routes:
        if type(route) is router.route_class:
            route.literal = route.path.split("{", 1)[0]
            app.router.routes.append(route)
        else:
            rest.append(route)
    return rest


def unshadow(routes: list) -> None:
    """Put a literal path ahead of an earlier route whose parameter would take it, so a
    plugin's ``GET /v1/bookings/waitlist`` is not read as ``GET /v1/bookings/{booking_id}``."""
    params = [r for r in routes if isinstance(r, Route) and "{" in r.path]
    for route in [r for r in routes if isinstance(r, Route) and "{" not in r.path]:
        takers = [p for p in params if p.methods & route.methods and route.path.startswith(p.path.split("{", 1)[0])
                  and p.path_regex.match(route.path)]
        at = routes.index(route) if takers else 0
        before = [i for i in map(routes.index, takers) if i < at]
        if before:
            routes.remove(route)
            routes.insert(min(before), route)


def _may_take(route, key: str) -> bool:
    """Whether ``route`` may match a path whose first two segments are ``key``: its literal
    is a prefix of the key, or goes on from it at a segment's end (any other route: yes)."""
    literal = getattr(route, "literal", "")
    if len(literal) <= len(key):
        return key.startswith(literal)
    return literal.startswith(key) and literal[len(key)] == "/"


def index(router) -> None:
    """Match a request against the routes that may take its path's first two segments
    (``/v1/customers``), in their order, instead of against all of them: the app's linear
    match tried 127 routes before loyalty's balance, 6-11% of that request's CPU. What none
    of them takes (a 404, a redirect, a 405 of another route) goes to the router's own match."""
    full = router.middleware_stack
    if full != router.app:  # the router has middleware of its own: leave its stack as it is
        return
    routes, buckets = router.routes, {}
    known = len(routes)

    async def indexed(scope, receive, send):
        nonlocal known
        if scope["type"] != "http":
            return await full(scope, receive, send)
        key = "/".join(_path(scope).split("/", 3)[:3])
        if known != len(routes):  # a route added after the app was built
            buckets.clear()
            known = len(routes)
        candidates = buckets.get(key)
        if candidates is None:
            if len(buckets) >= 1024:  # paths are the caller's: stay bounded
                buckets.clear()
            candidates = buckets[key] = [r for r in routes if _may_take(r, key)]
        for route in candidates:
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope.setdefault("router", router)
                scope["route"] = route
                scope.update(child_scope)
                return await route.handle(scope, receive, send)
        return await full(scope, receive, send)

    router.middleware_stack = indexed


def locate(routes) -> None:
    """Mark the creating routes whose thing is read at their path plus its id (``POST
    /v1/bookings`` and ``GET /v1/bookings/{booking_id}``): their 201 answers say where."""
    items = {r.path_format.rpartition("/")[0] for r in routes
             if isinstance(r, APIRoute) and "GET" in r.methods and r.path_format.endswith("}")}
    for route in routes:
        if isinstance(route, Route) and route.status_code == 201 and route.path_format in items:
            route.located = True


def feature_disabled(flag: str) -> Problem:
    return Problem(404, "Feature disabled", f"this feature is not enabled ({flag})", kind="feature-disabled",
                   flag=flag)


def flag_gate(flag: str):
    """Dependency: 404 problem when ``flag`` is off for the caller (for routes outside plugin routers)."""

    async def gate(request: Request, principal: Principal = Depends(current_principal)) -> None:
        if not request.app.state.ctx.flags.enabled(flag, principal.flag_context()):
            raise feature_disabled(flag)

    gate.flag = flag
    return gate


class GatedRoute(Route):
    """A plugin route behind its plugin's flag (``flag`` is set per plugin by ``gated_route``).

    The check runs in the route's handler rather than as a dependency: FastAPI solving one
    more dependency costs ~25 us a request, this costs the flag check (a dict lookup) and
    the principal, which the route's own dependencies then find cached on the request.
    The flag is checked before a connection is taken.
    """

    flag: str = ""

    def get_route_handler(self):
        handler = super().get_route_handler()
        flag = self.flag

        async def gated(request: Request):
            await ratelimit.rate_limit(request)  # a bad token spends its address's budget first
            principal = await current_principal(request)
            if not request.app.state.ctx.flags.enabled(flag, principal.flag_context()):
                raise feature_disabled(flag)
            return await handler(request)

        return gated


def gated_route(flag: str | None) -> type[Route]:
    return type("GatedRoute", (GatedRoute,), {"flag": flag}) if flag else Route

