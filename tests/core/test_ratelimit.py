"""Rate limits on both backends: in-process (embedded default) and Redis (shared)."""
from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from myhibachi.core.auth import create_api_key
from myhibachi.core.ratelimit import MemoryLimiter, RedisLimiter
from tests.conftest import free_port
from tests.core.probe import ProbePlugin

FLAGS = {"FEATURE_FLAG_PROBE": True}


@pytest.fixture(params=["memory", "redis"])
def backend(request):
    return request.param


@pytest.fixture
def limited_app(make_app, backend, redis_url):
    def build(**limits):
        overrides = {"rate_limit_ip": 1000, "rate_limit_principal": 1000, "rate_limit_window": 60, **limits}
        if backend == "redis":
            overrides["redis_url"] = redis_url
        app = make_app([ProbePlugin()], flags=FLAGS, **overrides)
        limiter = app.state.ctx.extra["ratelimiter"]
        assert isinstance(limiter, RedisLimiter if backend == "redis" else MemoryLimiter)
        limiter.prefix = f"test:{uuid.uuid4().hex}:"  # tests share one Redis
        return app

    return build


def client(app, ip: str = "10.0.0.1", headers: dict | None = None) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers)


async def api_keys(app, settings, n: int) -> list[dict]:
    out = []
    async with app.state.ctx.db.transaction() as conn:
        for i in range(n):
            key, _ = await create_api_key(conn, settings, name=f"k{i}", scopes=[])
            out.append({"Authorization": f"Bearer {key}"})
    return out


async def test_per_ip_budget_answers_429_with_retry_after(limited_app):
    app = limited_app(rate_limit_ip=5)
    async with client(app, "10.0.0.1") as c, client(app, "10.0.0.2") as other:
        first = [await c.get("/v1/probe/ping") for _ in range(5)]
        over = await c.get("/v1/probe/ping")
        elsewhere = await other.get("/v1/probe/ping")
        spent_on_core_routes_too = await c.get("/v1/meta/plugins")
    assert [r.status_code for r in first] == [200] * 5
    assert over.status_code == 429
    assert over.headers["content-type"].startswith("application/problem+json")
    assert over.json()["type"].endswith("/rate-limited")
    assert 1 <= int(over.headers["retry-after"]) <= 60
    assert elsewhere.status_code == 200
    assert spent_on_core_routes_too.status_code == 429


async def test_behind_a_trusted_proxy_each_client_has_its_own_budget(limited_app):
    """From a proxy of ``trusted_proxies`` the budget is the client's, the nearest address of
    X-Forwarded-For that is no proxy; a hop the caller made up before it changes nothing, and
    from an untrusted peer the header is ignored. Broken on purpose: the peer's address kept
    behind the proxy (every client shares the proxy's budget: red); the leftmost hop taken
    (a made-up address escapes the limit: red)."""
    app = limited_app(rate_limit_ip=2, trusted_proxies="10.9.0.0/16, 192.0.2.7")

    def via(client_ip: str, claimed: str = "") -> dict:
        return {"X-Forwarded-For": ", ".join(filter(None, (claimed, client_ip, "192.0.2.7")))}

    async with client(app, "10.9.0.1") as proxy, client(app, "10.0.0.5") as direct:
        ann = [(await proxy.get("/v1/probe/ping", headers=via("203.0.113.1", f"198.51.100.{i}"))).status_code
               for i in range(3)]
        bob = (await proxy.get("/v1/probe/ping", headers=via("203.0.113.2"))).status_code
        spoofed = [(await direct.get("/v1/probe/ping", headers=via(f"203.0.113.{9 + i}"))).status_code
                   for i in range(3)]
    assert ann == [200, 200, 429]  # three made-up first hops, one client
    assert bob == 200
    assert spoofed == [200, 200, 429]  # not a proxy: its header is not believed


async def test_per_principal_budget_follows_the_caller_across_addresses(limited_app, settings):
    app = limited_app(rate_limit_principal=3)
    alice, bob = await api_keys(app, settings, 2)
    async with client(app, "10.0.0.1", alice) as a1, client(app, "10.0.0.9", alice) as a2, \
            client(app, "10.0.0.1", bob) as b, client(app, "10.0.0.1") as anonymous:
        spent = [(await a1.get("/v1/probe/ping")).status_code for _ in range(3)]
        from_another_ip = await a2.get("/v1/probe/ping")
        bob_ok = await b.get("/v1/probe/ping")
        anonymous_ok = await anonymous.get("/v1/probe/ping")
    assert spent == [200, 200, 200]
    assert from_another_ip.status_code == 429
    assert bob_ok.status_code == 200 and anonymous_ok.status_code == 200


async def test_bad_tokens_spend_the_address_budget(limited_app):
    app = limited_app(rate_limit_ip=3)
    async with client(app, "10.0.0.3", {"Authorization": "Bearer nonsense"}) as c:
        answers = [(await c.get("/v1/probe/ping")).status_code for _ in range(4)]
    assert answers == [401, 401, 401, 429]


async def test_a_route_declares_a_stricter_budget(limited_app, settings):
    app = limited_app()
    alice, bob = await api_keys(app, settings, 2)
    async with client(app, "10.0.0.4") as c, client(app, "10.0.0.5") as d, \
            client(app, "10.0.0.4", alice) as a, client(app, "10.0.0.4", bob) as b:
        strict = [(await c.get("/v1/probe/strict")).status_code for _ in range(3)]
        other_ip = await d.get("/v1/probe/strict")
        still_fine = await c.get("/v1/probe/ping")
        per_user = [(await a.get("/v1/probe/strict-user")).status_code for _ in range(3)]
        bob_user = await b.get("/v1/probe/strict-user")
    assert strict == [200, 200, 429]
    assert other_ip.status_code == 200 and still_fine.status_code == 200
    assert per_user == [200, 200, 429] and bob_user.status_code == 200


async def test_window_resets(limited_app):
    app = limited_app(rate_limit_ip=2, rate_limit_window=1)
    async with client(app, "10.0.0.6") as c:
        before = [(await c.get("/v1/probe/ping")).status_code for _ in range(3)]
        assert before == [200, 200, 429]
        await asyncio.sleep(1.1)
        after = await c.get("/v1/probe/ping")
    assert after.status_code == 200


async def test_zero_means_unlimited_and_health_is_never_limited(limited_app):
    app = limited_app(rate_limit_ip=0, rate_limit_principal=0)
    async with client(app) as c:
        answers = {(await c.get("/v1/probe/ping")).status_code for _ in range(30)}
    assert answers == {200}
    app = limited_app(rate_limit_ip=1)
    async with client(app) as c:
        health = {(await c.get("/healthz")).status_code for _ in range(5)}
    assert health == {200}


async def test_redis_shares_the_budget_between_api_processes(make_app, redis_url):
    first = make_app([ProbePlugin()], flags=FLAGS, redis_url=redis_url, rate_limit_ip=4)
    second = make_app([ProbePlugin()], flags=FLAGS, redis_url=redis_url, rate_limit_ip=4)
    prefix = f"test:{uuid.uuid4().hex}:"
    first.state.ctx.extra["ratelimiter"].prefix = second.state.ctx.extra["ratelimiter"].prefix = prefix
    async with client(first, "10.1.0.1") as a, client(second, "10.1.0.1") as b:
        answers = [(await (a if i % 2 else b).get("/v1/probe/ping")).status_code for i in range(5)]
    assert answers == [200, 200, 200, 200, 429]


async def test_redis_down_fails_open(make_app):
    app = make_app([ProbePlugin()], flags=FLAGS, redis_url=f"redis://127.0.0.1:{free_port()}/0", rate_limit_ip=1)
    async with client(app) as c:
        answers = [(await c.get("/v1/probe/ping")).status_code for _ in range(3)]
    assert answers == [200, 200, 200]
