"""Every permission-guarded route refuses anonymous callers (401) and callers without that
permission (403 naming it); every route under /v1/admin/ declares a permission.

The walk reads the routes of an app built from every installed plugin with every flag on,
so a route added later by any plugin is covered without editing this file.
"""
import re
import uuid

from fastapi import APIRouter, Depends
from starlette.convertors import FloatConvertor, IntegerConvertor

from myhibachi.core import Plugin, hookimpl
from myhibachi.core.app import create_app
from myhibachi.core.auth import api_routes, create_api_key, has_permission, require, route_permission
from myhibachi.core.flags import TogglesFile
from myhibachi.core.plugins import discover
from tests.conftest import client_for

BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


def fill(route) -> str:
    """The route's path with random values for its parameters (UUIDs unless the path wants a number)."""

    def value(match: re.Match) -> str:
        convertor = route.param_convertors.get(match.group(1))
        if isinstance(convertor, (IntegerConvertor, FloatConvertor)):
            return "1"
        return str(uuid.uuid4())

    return PARAM.sub(value, route.path_format)


async def walk(app) -> tuple[list[str], list[str]]:
    """(failures, the routes checked as 'METHOD path')."""
    ctx = app.state.ctx
    doc = app.openapi()
    failures, checked = [], []
    async with client_for(app) as client:
        for route in api_routes(app):
            permission = route_permission(route)
            if permission is None:
                if route.path.startswith("/v1/admin/"):
                    failures.append(f"{sorted(route.methods)} {route.path} declares no permission")
                continue
            if permission not in ctx.permissions:
                failures.append(f"{route.path} requires {permission}, which nothing registers")
            others = sorted(p for p in ctx.permissions if not has_permission({p}, permission))
            async with ctx.db.transaction() as conn:
                key, _ = await create_api_key(conn, ctx.settings, name="route walk", scopes=others)
            path = fill(route)
            for method in sorted(route.methods - {"HEAD"}):
                name = f"{method} {route.path_format}"
                checked.append(name)
                body = {"json": {}} if method in BODY_METHODS else {}
                anonymous = await client.request(method, path, **body)
                if anonymous.status_code != 401 or not anonymous.headers["content-type"].startswith(
                        "application/problem+json"):
                    failures.append(f"{name} anonymously: {anonymous.status_code} {anonymous.text[:200]}")
                keyed = await client.request(method, path, headers={"Authorization": f"Bearer {key}"}, **body)
                if keyed.status_code != 403 or keyed.json().get("permission") != permission:
                    failures.append(f"{name} without {permission}: {keyed.status_code} {keyed.text[:200]}")
                documented = doc["paths"].get(route.path_format, {}).get(method.lower(), {}).get("responses", {})
                if not {"401", "403"} <= set(documented):
                    failures.append(f"{name} does not document its 401 and 403 problems")
    return failures, checked


def every_installed_plugin(settings) -> list[Plugin]:
    plugins = [load() for load in discover().values()]
    toggles = TogglesFile(settings.toggles_path)
    for plugin in plugins:
        if plugin.flag:
            toggles.set(plugin.flag, enabled=True, rollout=100)
    return plugins


async def test_every_guarded_route_refuses_anonymous_and_unpermitted_callers(settings, clean_db):
    app = create_app(every_installed_plugin(settings), settings=settings, database=clean_db)
    app.state.ctx.flags.start()
    try:
        failures, checked = await walk(app)
    finally:
        app.state.ctx.flags.stop()
    assert failures == []
    # The core's own guarded routes are among those walked, so an empty walk cannot pass.
    assert {"GET /v1/admin/customers", "GET /v1/admin/customers/{customer_id}",
            "PATCH /v1/admin/customers/{customer_id}", "GET /v1/meta/plugins"} <= set(checked)


def _pretends(permission: str):
    """A dependency that carries a permission's name but lets everyone through."""

    async def dependency() -> None:
        return None

    dependency.permission = permission
    return dependency


class CarelessPlugin(Plugin):
    name = "careless"
    version = "1.0.0"
    flag = "FEATURE_FLAG_CARELESS"

    @hookimpl
    def register_permissions(self):
        return ["careless.read"]

    @hookimpl
    def register_routes(self, router: APIRouter, ctx):
        @router.get("/admin/careless/open")
        async def open_route() -> dict:
            return {}

        @router.delete("/admin/careless/{item_id}", dependencies=[Depends(_pretends("careless.read"))])
        async def pretend(item_id: uuid.UUID) -> dict:
            return {}

        @router.get("/careless/unregistered", dependencies=[Depends(require("careless.secret"))])
        async def unregistered() -> dict:
            return {}


async def test_the_walk_catches_unguarded_and_falsely_guarded_routes(make_app):
    app = make_app([CarelessPlugin()], flags={"FEATURE_FLAG_CARELESS": True})
    failures, checked = await walk(app)
    joined = "\n".join(failures)
    assert "/v1/admin/careless/open declares no permission" in joined
    assert "DELETE /v1/admin/careless/{item_id} anonymously: 200" in joined
    assert "DELETE /v1/admin/careless/{item_id} without careless.read: 200" in joined
    assert "/v1/careless/unregistered requires careless.secret, which nothing registers" in joined
    assert "GET /v1/careless/unregistered does not document its 401 and 403 problems" in joined
    assert not any("/v1/admin/customers" in f for f in failures)
