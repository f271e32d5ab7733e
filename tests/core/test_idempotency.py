"""Idempotency-Key: one effect per key and principal, stored responses replayed, crash safe."""
from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
import sqlalchemy as sa

from myhibachi.core.auth import create_api_key
from myhibachi.core.idempotency import HEADER
from myhibachi.core.models import idempotency_keys
from myhibachi.core.scheduled import periodic_jobs_of, run_periodic
from tests.core.probe import ProbePlugin, create_effects_table, effects

FLAGS = {"FEATURE_FLAG_PROBE": True}


async def setup(make_app, database, settings, n_keys: int = 1):
    await create_effects_table(database)
    app = make_app([ProbePlugin()], flags=FLAGS)
    keys = []
    async with database.transaction() as conn:
        for i in range(n_keys):
            key, _ = await create_api_key(conn, settings, name=f"m{i}", scopes=["payments.write"])
            keys.append({"Authorization": f"Bearer {key}"})
    return app, keys


async def charges(database) -> dict[str, int]:
    async with database.read() as conn:
        return await effects(conn, "charge")


@pytest.mark.parametrize("path", ["/v1/probe/charges", "/v1/probe/charges-fn", "/v1/probe/charges-own"])
async def test_twenty_parallel_requests_with_one_key_make_one_effect(make_app, client_of, database, settings, path):
    app, [auth] = await setup(make_app, database, settings)
    headers = {**auth, HEADER: str(uuid.uuid4())}
    async with client_of(app) as c:
        answers = await asyncio.gather(*[c.post(path, json={"tag": "t"}, headers=headers) for _ in range(20)])
        after = await c.post(path, json={"tag": "t"}, headers=headers)
    assert await charges(database) == {"t": 1}
    statuses = sorted(a.status_code for a in answers)
    firsts = [a for a in answers if a.status_code == 201 and "idempotent-replayed" not in a.headers]
    assert len(firsts) == 1, statuses
    assert set(statuses) <= {201, 409}
    for a in answers:
        if a.status_code == 409:
            assert a.headers["retry-after"] == "1" and a.json()["type"].endswith("/idempotency-in-progress")
        else:
            assert a.json() == firsts[0].json()
    assert after.status_code == 201 and after.headers["idempotent-replayed"] == "true"
    assert after.json() == firsts[0].json()


async def test_the_stored_response_commits_in_the_routes_own_transaction(make_app, client_of, database, settings):
    path = "/v1/probe/charges-fn"
    app, [auth] = await setup(make_app, database, settings)
    async with client_of(app) as c:
        r = await c.post(path, json={"tag": "tx"}, headers={**auth, HEADER: "tx-1"})
    assert r.status_code == 201
    async with database.read() as conn:
        [route_tx] = await effects(conn, "charge-tx")
        key_tx = await conn.scalar(sa.text("SELECT xmin::text FROM idempotency_keys"))
    assert key_tx == route_tx


async def test_retry_returns_the_stored_response_and_another_body_is_422(make_app, client_of, database, settings):
    app, [auth] = await setup(make_app, database, settings)
    headers = {**auth, HEADER: "order-1"}
    async with client_of(app) as c:
        first = await c.post("/v1/probe/charges", json={"tag": "a"}, headers=headers)
        retry = await c.post("/v1/probe/charges", json={"tag": "a"}, headers=headers)
        other_body = await c.post("/v1/probe/charges", json={"tag": "b"}, headers=headers)
        other_key = await c.post("/v1/probe/charges", json={"tag": "a"}, headers={**auth, HEADER: "order-2"})
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    assert (retry.status_code, retry.content) == (201, first.content)  # the very bytes, keys in order
    assert other_body.status_code == 422
    assert other_body.headers["content-type"].startswith("application/problem+json")
    assert other_body.json()["errors"][0]["field"] == HEADER
    assert other_key.status_code == 201 and other_key.json()["id"] != first.json()["id"]
    assert await charges(database) == {"a": 2}


async def test_keys_are_scoped_per_principal(make_app, client_of, database, settings):
    app, [alice, bob] = await setup(make_app, database, settings, n_keys=2)
    async with client_of(app) as c:
        a = await c.post("/v1/probe/charges", json={"tag": "x"}, headers={**alice, HEADER: "same"})
        b = await c.post("/v1/probe/charges", json={"tag": "x"}, headers={**bob, HEADER: "same"})
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"] and "idempotent-replayed" not in b.headers
    assert await charges(database) == {"x": 2}
    async with database.read() as conn:
        scopes = set(await conn.scalars(sa.select(idempotency_keys.c.scope)))
    assert len(scopes) == 2 and all(s.startswith("api_key:") for s in scopes)


async def test_a_failed_request_stores_nothing_so_a_retry_runs_again(make_app, client_of, database, settings):
    app, [auth] = await setup(make_app, database, settings)
    headers = {**auth, HEADER: "k"}
    async with client_of(app) as c:
        first = await c.post("/v1/probe/charges", json={"tag": "refused"}, headers=headers)
        second = await c.post("/v1/probe/charges", json={"tag": "refused"}, headers=headers)
    assert first.status_code == second.status_code == 409
    assert "idempotent-replayed" not in second.headers
    assert await charges(database) == {}  # both attempts' effects rolled back with the failure
    async with database.read() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(idempotency_keys)) == 0


async def test_header_required_and_documented(make_app, client_of, database, settings):
    app, [auth] = await setup(make_app, database, settings)
    async with client_of(app) as c:
        missing = await c.post("/v1/probe/charges", json={"tag": "a"}, headers=auth)
        optional = await c.post("/v1/probe/notes", json={"tag": "n"}, headers=auth)
        optional_keyed = [await c.post("/v1/probe/notes", json={"tag": "m"}, headers={**auth, HEADER: "n1"})
                          for _ in range(2)]
        spec = (await c.get("/openapi.json")).json()
    assert missing.status_code == 422 and HEADER in missing.json()["errors"][0]["field"]
    assert optional.status_code == 201
    assert optional_keyed[1].headers["idempotent-replayed"] == "true"
    async with database.read() as conn:
        assert await effects(conn, "note") == {"n": 1, "m": 1}
        assert await charges(database) == {}

    def header_param(path):
        params = spec["paths"][path]["post"]["parameters"]
        return next(p for p in params if p["name"] == HEADER and p["in"] == "header")

    assert header_param("/v1/probe/charges")["required"] is True
    assert header_param("/v1/probe/notes").get("required", False) is False
    assert spec["paths"]["/v1/probe/charges"]["post"]["requestBody"]["required"] is True
    assert "201" in spec["paths"]["/v1/probe/charges"]["post"]["responses"]


async def test_keys_expire_after_a_day_and_the_poller_purges_them(make_app, client_of, database, settings):
    app, [auth] = await setup(make_app, database, settings)
    headers = {**auth, HEADER: "old"}
    async with client_of(app) as c:
        first = await c.post("/v1/probe/charges", json={"tag": "e"}, headers=headers)
        async with database.read() as conn:
            ttl = await conn.scalar(sa.select(idempotency_keys.c.expires_at - idempotency_keys.c.created_at))
        assert ttl.total_seconds() == 24 * 3600
        async with database.transaction() as conn:
            await conn.run(sa.update(idempotency_keys).values(expires_at=sa.func.now() - sa.text("interval '1 s'")))
        assert "core.idempotency_expiry" in periodic_jobs_of(app.state.ctx)  # the worker runs it
        assert await run_periodic(app.state.ctx) == 2  # the core's two jobs, first run when first seen
        async with database.read() as conn:
            assert await conn.scalar(sa.select(sa.func.count()).select_from(idempotency_keys)) == 0
        assert await run_periodic(app.state.ctx) == 0  # not due again before its period
        again = await c.post("/v1/probe/charges", json={"tag": "e"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] != first.json()["id"]
    assert await charges(database) == {"e": 2}


async def test_the_stored_response_is_sealed_and_bound_to_its_key(make_app, client_of, database, settings):
    """Responses carry customers' emails, numbers and messages: the stored copy is sealed
    (only the resource's id stays readable), a replay opens it to the same bytes, and a
    ciphertext moved to another key's row does not open. Broken on purpose by storing the
    body as it is: red (the planted text was in the row)."""
    app, [auth] = await setup(make_app, database, settings)
    planted = "ann.lee@example.com +14155552671 see you at 12 Oak Street"
    async with client_of(app) as c:
        first = await c.post("/v1/probe/charges", json={"tag": planted}, headers={**auth, HEADER: "sealed-1"})
        retry = await c.post("/v1/probe/charges", json={"tag": planted}, headers={**auth, HEADER: "sealed-1"})
        other = await c.post("/v1/probe/charges", json={"tag": "x"}, headers={**auth, HEADER: "sealed-2"})
    assert first.status_code == 201 and (retry.status_code, retry.content) == (201, first.content)
    async with database.read() as conn:
        stored = {r["key"]: r["response"] for r in await conn.fetch_all(
            sa.select(idempotency_keys.c.key, idempotency_keys.c.response))}
        raw = " ".join(await conn.scalars(sa.text("SELECT response::text FROM idempotency_keys")))
    assert planted not in raw and "ann.lee" not in raw and "Oak Street" not in raw
    assert stored["sealed-1"]["id"] == first.json()["id"]

    async with database.transaction() as conn:  # the first answer's ciphertext under the other key
        await conn.run(sa.update(idempotency_keys).where(idempotency_keys.c.key == "sealed-2")
                       .values(response=stored["sealed-1"]))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        moved = await c.post("/v1/probe/charges", json={"tag": "x"}, headers={**auth, HEADER: "sealed-2"})
    assert moved.status_code == 500 and planted not in moved.text
    assert other.status_code == 201
