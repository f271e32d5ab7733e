"""The app factory: plugin routes gated by flags, problem bodies everywhere."""
import asyncio
import socket
import time

from fastapi import APIRouter
from pydantic import BaseModel

from myhibachi.core import Plugin, hookimpl
from tests.core.conftest import emailed_code


class Echo(BaseModel):
    value: int


class EchoPlugin(Plugin):
    name = "echo"
    version = "1.0.0"
    flag = "FEATURE_FLAG_ECHO"

    @hookimpl
    def register_routes(self, router: APIRouter, ctx):
        @router.post("/echo", response_model=Echo)
        async def echo(body: Echo) -> Echo:
            return body


async def test_plugin_route_answers_when_flag_on(make_app, client_of):
    app = make_app([EchoPlugin()], flags={"FEATURE_FLAG_ECHO": True})
    async with client_of(app) as c:
        r = await c.post("/v1/echo", json={"value": 3})
    assert r.status_code == 200 and r.json() == {"value": 3}


async def test_flag_off_answers_404_problem_naming_the_flag(make_app, client_of):
    app = make_app([EchoPlugin()], flags={"FEATURE_FLAG_ECHO": False})
    async with client_of(app) as c:
        r = await c.post("/v1/echo", json={"value": 3})
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["type"].endswith("/feature-disabled") and body["flag"] == "FEATURE_FLAG_ECHO"


async def test_problem_json_on_404_405_422_with_field_named(make_app, client_of):
    app = make_app([EchoPlugin()], flags={"FEATURE_FLAG_ECHO": True})
    async with client_of(app) as c:
        missing = await c.get("/v1/nothing-here")
        wrong_method = await c.get("/v1/echo")
        bad = await c.post("/v1/echo", json={"value": "not a number"})
        malformed = await c.post("/v1/echo", content=b'{"value": 3,}', headers={"Content-Type": "application/json"})
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")
    assert wrong_method.status_code == 405 and wrong_method.json()["status"] == 405
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "body.value"
    # every field is named with where it came from; malformed JSON is the body's, with the parser's words
    assert malformed.status_code == 422, malformed.text
    [error] = malformed.json()["errors"]
    assert error["field"] == "body" and error["message"].startswith("malformed JSON: ") and "character 12" in error["message"]


async def test_health_ready_and_metrics(make_app, client_of):
    app = make_app([])
    async with client_of(app) as c:
        assert (await c.get("/healthz")).json()["status"] == "ok"
        ready = await c.get("/readyz")
        metrics = await c.get("/metrics")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["database"]["ok"] is True
    assert "myhibachi_http_requests_total" in metrics.text


async def test_readyz_answers_at_once_while_the_queue_stalls(make_app, client_of):
    """A task queue (Redis) that accepts connections and never answers: /readyz says so within
    its timeout and /healthz on the same worker is not held up.

    Broken on purpose: calling queue_size() on the event loop again (red: /healthz held up).
    """
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        app = make_app([], redis_url=f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
        async with client_of(app) as c:
            async def timed(path: str):
                start = time.monotonic()
                return await c.get(path), time.monotonic() - start

            (ready, ready_took), (health, health_took) = await asyncio.wait_for(
                asyncio.gather(timed("/readyz"), timed("/healthz")), 5)
            assert health.status_code == 200 and health_took < 1.0, health_took
            assert ready.status_code == 503 and ready_took < 3.0, ready_took
            checks = ready.json()["checks"]
            assert checks["queue"] == {"ok": False, "detail": "no answer within 2s"}
            assert checks["database"] == {"ok": True} and checks["plugins"] == {"ok": True}
            again, again_took = await asyncio.wait_for(timed("/readyz"), 5)  # the background checks' answer
            assert again.status_code == 503 and again_took < 0.5, again_took


async def test_readyz_lists_failed_plugins(make_app, client_of):
    class Clumsy(Plugin):
        name, version = "clumsy", "1.0.0"

        @hookimpl
        def register_routes(self, router, ctx):
            raise RuntimeError("dropped the spatula")

    app = make_app([Clumsy()], strict_plugins=False)
    async with client_of(app) as c:
        ready = await c.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["plugins"] == {
        "ok": False, "failed": {"clumsy": "register_routes raised RuntimeError: dropped the spatula"}}
    assert ready.json()["checks"]["database"] == {"ok": True}


class LateRoutes(Plugin):
    name = "late_routes"
    version = "1.0.0"

    @hookimpl
    def register_routes(self, router, ctx):
        @router.get("/{kind}/ping")  # ahead of /late/{thing}: takes /v1/late/ping first
        async def any_kind(kind: str):
            return {"route": "any kind", "kind": kind}

        @router.get("/late/{thing}")
        async def late_one(thing: str):
            return {"route": "late", "thing": thing}

        @router.get("/late/things/{thing}")
        async def late(thing: str):
            return {"thing": thing}

        nested = APIRouter(prefix="/nested")

        @nested.get("/deep")
        async def deep():
            return {"deep": True}

        router.include_router(nested)


async def test_every_router_still_finds_its_routes_when_others_skip_by_lead(make_app, client_of):
    """Routers skip paths whose first two segments none of their routes has; a plugin's
    routes, included last and nested, are still found, and a known path with the wrong
    method is still 405 (broken on purpose: leads taken without the routers' prefixes
    make the first two requests 404)."""
    app = make_app([LateRoutes()])
    async with client_of(app) as c:
        assert (await c.get("/v1/late/things/grill")).json() == {"thing": "grill"}
        assert (await c.get("/v1/nested/deep")).json() == {"deep": True}
        assert (await c.post("/v1/late/things/grill")).status_code == 405
        assert (await c.get("/v1/nowhere")).status_code == 404
        assert (await c.get("/healthz")).status_code == 200


async def test_the_route_index_keeps_the_apps_order_and_sees_a_route_added_later(make_app, client_of):
    """A request is matched against the routes that may take its path's first two segments,
    in the app's order: a route with a parameter in the second segment, ahead of a literal
    one, still takes ``/v1/late/ping`` first, as Starlette's own match does; a route added to
    the built app is found. Broken on purpose by indexing routes under their own first two
    segments only (``literal.startswith(key)``): red (``/v1/late/ping`` answers "late")."""
    app = make_app([LateRoutes()])

    async def added():
        return {"route": "added"}

    async with client_of(app) as c:
        first = await c.get("/v1/late/ping")
        other = await c.get("/v1/late/grill")
        app.router.add_api_route("/v1/late-added", added)
        later = await c.get("/v1/late-added")
    assert first.json() == {"route": "any kind", "kind": "late"}
    assert other.json() == {"route": "late", "thing": "grill"}
    assert later.json() == {"route": "added"}


async def test_every_documented_error_is_a_problem_body(make_app, client_of):
    """Each operation's 4xx and 5xx answers are documented as problem+json (a generated
    client parses them so); seen broken when the routes stopped inheriting the app's 422."""
    from myhibachi.core.plugins import discover

    async with client_of(make_app(sorted(discover()))) as c:
        spec = (await c.get("/openapi.json")).json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    checked = 0
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            for status, answer in op["responses"].items():
                if status.startswith(("4", "5")):
                    schema = answer.get("content", {}).get("application/problem+json", {}).get("schema")
                    assert schema == {"$ref": "#/components/schemas/ProblemModel"}, f"{method} {path} {status}"
                    checked += 1
            if path.startswith("/v1/") and op.get("parameters") or "requestBody" in op:
                assert "422" in op["responses"], f"{method} {path} does not document its 422"
    assert checked > 100
    problem = spec["components"]["schemas"]["ProblemModel"]
    assert problem["properties"]["errors"]["anyOf"][0]["items"] == {"$ref": "#/components/schemas/FieldError"}
    assert spec["components"]["schemas"]["FieldError"]["required"] == ["field", "message"]


async def test_every_response_carries_the_security_headers_and_no_store(make_app, client_of):
    """A customer's profile, a problem, an unmatched path and the API docs: nosniff, no framing,
    no referrer, and nothing cached unless the route says otherwise; a content policy allowing
    nothing except on the docs' pages (their scripts); HSTS only on HTTPS. Broken on purpose
    by not adding them in the middleware: red."""
    app = make_app([])
    async with client_of(app) as c:
        asked = await c.post("/v1/customers", json={"email": "hdr@example.com", "password": "correct horse 1",
                                                    "name": "H"})
        signup = await c.post("/v1/customers/confirm", json={"code": await emailed_code(app, "hdr@example.com"),
                                                             "password": "correct horse 1"})
        me = await c.get("/v1/customers/me", headers={"Authorization": f"Bearer {signup.json()['access_token']}"})
        problem = await c.get("/v1/customers/me")
        unmatched = await c.get("/v1/nothing-here")
        docs = await c.get("/docs")
    import httpx

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://test") as c:
        secure = await c.get("/healthz")
    assert (me.status_code, problem.status_code, unmatched.status_code, docs.status_code) == (200, 401, 404, 200)
    for r in (asked, signup, me, problem, unmatched, docs, secure):
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer" and r.headers["cache-control"] == "no-store"
    for r in (signup, me, problem, unmatched, secure):
        assert r.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert "content-security-policy" not in docs.headers
    assert "strict-transport-security" not in me.headers
    assert secure.headers["strict-transport-security"].startswith("max-age=31536000")


async def test_a_body_over_the_limit_is_a_413_problem_before_it_is_read(make_app, client_of):
    """With a Content-Length over ``MYHIBACHI_MAX_BODY_BYTES`` the request is answered 413 at
    once; a body sent in chunks without one is cut off once it grows past the limit; a body
    within it is served. Broken on purpose by not checking the length in the middleware: red
    (the login parsed the body and answered 422)."""
    app = make_app([], max_body_bytes=4096)
    big = '{"email": "a@example.com", "password": "' + "x" * 5000 + '"}'

    async def chunks():
        for _ in range(10):
            yield b" " * 1000
        yield big.encode()

    async with client_of(app) as c:
        declared = await c.post("/v1/customers/login", content=big, headers={"Content-Type": "application/json"})
        chunked = await c.post("/v1/customers/login", content=chunks(), headers={"Content-Type": "application/json"})
        small = await c.post("/v1/customers/login", json={"email": "a@example.com", "password": "wrong-password"})
    for r in (declared, chunked):
        assert r.status_code == 413 and r.headers["content-type"].startswith("application/problem+json"), r.text
        assert r.json()["type"].endswith("/payload-too-large") and r.json()["max_bytes"] == 4096
    assert small.status_code == 401
