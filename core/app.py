"""The application factory: ``create_app()`` builds the API from the core and its plugins."""
from __future__ import annotations

import functools
import gc
import logging
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any, Iterable

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from myhibachi.core import __version__, audit, errors, openapi, ratelimit
from myhibachi.core.audit import STATE_CHANGING
from myhibachi.core.auth import Principal, require
from myhibachi.core.context import AppContext
from myhibachi.core import roles
from myhibachi.core.db import Database
from myhibachi.core.errors import error_responses
from myhibachi.core.flags import Flags
from myhibachi.core.pagination import NextCursor
from myhibachi.core.plugins import Plugin, PluginManager, load_installed
from myhibachi.core.routing import api_router, flag_gate, gated_route, index, locate, take, unshadow
from myhibachi.core.settings import Settings

log = logging.getLogger("myhibachi.app")

CORE_PERMISSIONS = ["plugins.read"]
GC_YOUNG = 10_000  # tracked objects allocated (net) between two collections of the youngest generation


class PluginSetting(BaseModel):
    variable: str
    default: str
    description: str


class PluginInfo(BaseModel):
    name: str
    version: str
    flag: str | None
    state: str
    reason: str = ""
    requires: list[str]
    features: dict[str, list[str]]
    settings: list[PluginSetting] = []


class Health(BaseModel):
    status: str
    checks: dict[str, Any] = {}


def _leaf_routes(router):
    for route in router.routes:
        inner = getattr(route, "original_router", None)  # FastAPI keeps included routers whole
        if inner is not None:
            yield from _leaf_routes(inner)
        else:
            yield route


class PluginPage(BaseModel):
    items: list[PluginInfo]
    next_cursor: NextCursor


def plugin_states(ctx: AppContext) -> list[PluginInfo]:
    return [PluginInfo(**row) for row in ctx.plugins.states(ctx.flags)]


def _core_router(make) -> APIRouter:
    router = make(tags=["meta"])

    @router.get("/meta/plugins", response_model=PluginPage, responses=error_responses(401, 403))
    async def list_plugins(request: Request, _: Principal = Depends(require("plugins.read"))) -> PluginPage:
        """Every installed plugin on one page (a deployment has tens, not thousands)."""
        return PluginPage(items=plugin_states(request.app.state.ctx), next_cursor=None)

    return router


# On every response: no MIME sniffing, no framing, no referrer, nothing cached (answers carry
# personal data) unless the route says otherwise; no content of any kind outside the API
# docs' pages; HSTS on requests that arrived over HTTPS.
SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer")]
CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
NO_STORE = (b"cache-control", b"no-store")
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
DOC_PAGES = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})


def _security_headers(scope, headers: list) -> list:
    extra = list(SECURITY_HEADERS)
    if scope["path"] not in DOC_PAGES:
        extra.append(CSP)
    if not any(k.lower() == b"cache-control" for k, _ in headers):
        extra.append(NO_STORE)
    if scope.get("scheme") == "https":
        extra.append(HSTS)
    return headers + extra


def _too_large(limit: int) -> errors.Problem:
    return errors.Problem(413, "Payload too large", f"the request body is over {limit} bytes",
                          kind="payload-too-large", max_bytes=limit)


class _Observe:
    """Pure ASGI middleware: the body size limit, request id and security headers, Prometheus metrics by route
    template, a log line per request, and the audit record of staff actions on routes that
    did not record theirs in their own transaction."""

    def __init__(self, app, metrics, max_body: int = 1 << 20) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body

    async def _buffered(self, receive):
        """A body sent without a Content-Length, read up to the limit: a ``receive`` replaying
        it, or None once it grows too big."""
        parts, size, more, last = [], 0, True, None
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: the app sees it so
                last = message
                break
            parts.append(message.get("body", b""))
            size += len(parts[-1])
            if size > self.max_body:
                return None
            more = message.get("more_body", False)
        replay = [last] if last else [{"type": "http.request", "body": b"".join(parts), "more_body": False}]

        async def replayed():
            return replay.pop() if replay else await receive()

        return replayed

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        rid = length = None
        for k, v in scope["headers"]:
            if k == b"x-request-id":
                rid = v
            elif k == b"content-length":
                length = v
        rid = rid or uuid.uuid4().hex.encode()
        state = scope.setdefault("state", {})
        state["request_id"] = rid.decode()
        status = 500

        async def send_wrapper(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = _security_headers(scope, list(message.get("headers", [])) + [
                    (b"x-request-id", rid)])
            await send(message)

        try:
            if length is not None and length.isdigit() and int(length) > self.max_body:
                # refused before a byte of it is read
                await errors.problem_response(_too_large(self.max_body))(scope, receive, send_wrapper)
                return
            if length is None and scope["method"] in STATE_CHANGING:
                receive = await self._buffered(receive)
                if receive is None:
                    await errors.problem_response(_too_large(self.max_body))(scope, receive, send_wrapper)
                    return
            await self.app(scope, receive, send_wrapper)
        finally:
            seconds = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or "unmatched"  # the template, never the path
            self.metrics.observe(scope["method"], route, status, seconds)
            if access_log.isEnabledFor(logging.INFO):
                principal = state.get("principal")
                access_log.info("%s %s %s", scope["method"], route, status, extra={
                    "request_id": state["request_id"], "method": scope["method"], "route": route, "status": status,
                    "duration_ms": round(seconds * 1000, 2), "principal": getattr(principal, "kind", None)})
        if scope["method"] in STATE_CHANGING:
            await audit.after_response(scope, status)


access_log = logging.getLogger("myhibachi.access")


def _build_plugins(settings: Settings, plugins: Iterable[Plugin | str] | None) -> PluginManager:
    if plugins is None:
        return load_installed(settings)
    from myhibachi.core.plugins import discover

    manager = PluginManager(trace=settings.trace_hooks)
    installed = None
    objects = []
    for p in plugins:
        if isinstance(p, str):
            installed = installed or discover()
            objects.append(installed[p]())
        else:
            objects.append(p)
    manager.load(objects, strict=settings.strict_plugins)
    return manager


def create_app(
    plugins: Iterable[Plugin | str] | None = None,
    *,
    settings: Settings | None = None,
    database: Database | None = None,
) -> FastAPI:
    """Build the API.

    :param plugins: plugin objects or installed plugin names to load; None loads the
        installed plugins selected by the settings (``MYHIBACHI_PLUGINS`` ...).
    :param settings: settings; read from the environment when None.
    :param database: an existing database handle (tests share one); else built from settings.
    """
    from myhibachi.core import api as core_api
    from myhibachi.core import events, fields, ports, tasks

    settings = settings or Settings()
    manager = _build_plugins(settings, plugins)
    flags = Flags(settings)
    manager.flags = flags
    if not flags.server_mode:
        flags_file_defaults(flags, manager)
    db = database or Database(roles.app_url(settings), pool_size=settings.db_write_pool_size,
                                 read_pool_size=settings.db_read_pool_size)
    ctx = AppContext(settings=settings, db=db, flags=flags, plugins=manager)
    ctx.ports = ports.build(ctx)
    ctx.huey = tasks.make_huey(settings)
    ctx.extra["ratelimiter"] = ratelimit.build(settings)
    ctx.permissions = set(CORE_PERMISSIONS) | set(core_api.PERMISSIONS)

    strict = settings.strict_plugins
    for plugin, perms in manager.setup_call("register_permissions", strict=strict):
        ctx.permissions.update(perms or [])
    tasks.register_core_tasks(ctx)
    manager.setup_call("register_tasks", strict=strict, huey=ctx.huey, ctx=ctx)
    events.declare_all(ctx, strict=strict)
    for plugin, handlers in manager.setup_call("register_event_handlers", strict=strict, ctx=ctx):
        try:
            events.add_handlers(ctx, plugin, handlers or {})
        except ValueError as exc:
            manager.fail(plugin, f"register_event_handlers: {exc}", strict)
    ctx.models = fields.compose(manager, strict)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        flags.start()
        ctx.cache.start(await db.pool("reads"))
        ctx.waker.start(await db.pool("reads"))
        await db.pool("writes")
        from myhibachi.core.health import Readiness

        readiness_checks = ctx.extra.setdefault("readiness", Readiness(ctx))
        readiness_checks.start()
        # What start-up made lives as long as the process: out of the collector's sight, a
        # full collection scans the requests' objects only (200k fewer with every plugin).
        gc.freeze()
        # The youngest generation is collected every 700 objects by default: under load that
        # is every few requests, each time over the objects of every request in flight
        # (about 175 us each, 3-6% of a read with every plugin). Requests free their objects
        # by reference counting, so a collection ten times rarer finds as little garbage.
        gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])
        try:
            yield
        finally:
            await readiness_checks.stop()
            await ctx.waker.stop()
            await ctx.cache.stop()
            flags.stop()
            await ctx.extra["ratelimiter"].close()
            if database is None:
                await db.close()

    app = FastAPI(
        title="My Hibachi API",
        version=__version__,
        lifespan=lifespan,
        responses=error_responses(422),
    )
    app.state.ctx = ctx
    errors.install(app)
    openapi.install(app)

    @app.get("/healthz", response_model=Health, tags=["meta"])
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get("/readyz", response_model=Health, tags=["meta"], responses=error_responses(503))
    async def readyz():
        return await readiness(ctx)

    @app.get("/metrics", response_class=PlainTextResponse, tags=["meta"])
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse((await ctx.extra["metrics"].scrape(ctx)).decode())

    make = functools.partial(api_router, app)
    for router in [_core_router(make), *core_api.routers(make, ctx.models)]:
        take(app, router)
    routers = {p.name: make(tags=[p.name], route_class=gated_route(p.flag)) for p in manager.plugins}
    manager.setup_call("register_routes", strict=strict, own=lambda p: {"router": routers[p.name]}, ctx=ctx)
    for plugin in manager.plugins:
        rest = take(app, routers[plugin.name])
        if rest:  # brought in on a router of its own: gated the slower way, as a dependency
            gate = [Depends(flag_gate(plugin.flag))] if plugin.flag else []
            app.include_router(APIRouter(routes=rest), dependencies=gate)
    unshadow(app.router.routes)
    locate(app.router.routes)
    index(app.router)

    from myhibachi.core.metrics import Metrics

    ctx.extra["metrics"] = observed = Metrics()
    ctx.extra["registry"] = observed.registry
    app.add_middleware(_Observe, metrics=observed, max_body=settings.max_body_bytes)
    if settings.tracing != "off":
        from myhibachi.core.metrics import traced

        traced(app, settings.tracing)
    return app


def serve() -> FastAPI:
    """The app factory of a server process (``myhibachi up`` runs it under granian): its logs
    as JSON lines (``MYHIBACHI_LOG_FORMAT``), then :func:`create_app`."""
    from myhibachi.core.metrics import configure_logging

    settings = Settings()
    configure_logging(settings.log_format)
    settings.require_secret_key()
    return create_app(settings=settings)


def flags_file_defaults(flags: Flags, manager: PluginManager) -> None:
    """On the embedded default, every installed plugin's flag exists in the toggles file (on)."""
    names = [r.flag for r in manager.records.values() if r.flag]
    flags.toggles.ensure(names)


async def readiness(ctx: AppContext):
    """The last background checks (database, queue, flags, plugins): 503 when one fails."""
    from fastapi.responses import JSONResponse

    from myhibachi.core.health import Readiness

    checker = ctx.extra.setdefault("readiness", Readiness(ctx))
    ok, checks = await checker.answer()
    body = Health(status="ok" if ok else "unavailable", checks=checks)
    if ok:
        return body
    return JSONResponse(body.model_dump(), status_code=503)
