"""A route's connection: ``conn: Conn = Connection``, a read connection on GET and one
transaction on the other methods, opened once the route's dependencies are solved."""
from __future__ import annotations

import httpx
import sqlalchemy as sa
from fastapi import Depends

from myhibachi.core.auth import Principal, authenticated
from myhibachi.core.db import Conn
from myhibachi.core.errors import Problem
from myhibachi.core.routing import Connection, Route


def _probe_router():
    from fastapi import APIRouter

    return APIRouter(route_class=Route)


async def test_get_routes_read_outside_transactions(make_app, client_of, clean_db):
    """Each statement of a GET commits on its own (broken on purpose: a read pool without
    autocommit gives both statements one txid)."""
    app = make_app()
    router = _probe_router()

    @router.get("/probe")
    async def probe(conn: Conn = Connection):
        return [await conn.scalar("SELECT txid_current()") for _ in range(2)]

    app.include_router(router)
    async with client_of(app) as c:
        first, second = (await c.get("/probe")).json()
    assert first != second


async def test_a_write_route_is_one_transaction_rolled_back_when_it_raises(make_app, client_of, clean_db):
    """Broken on purpose by committing before the endpoint raises: the refused request keeps
    its first row."""
    app = make_app()
    async with clean_db.transaction() as conn:
        await conn.run("CREATE TABLE IF NOT EXISTS write_probe (n int)")
        await conn.run("TRUNCATE write_probe")
    probe = sa.table("write_probe", sa.column("n"))
    router = _probe_router()

    @router.post("/probe/{n}")
    async def write(n: int, conn: Conn = Connection):
        await conn.run(sa.insert(probe).values(n=sa.bindparam("n")), {"n": n})
        async with conn.savepoint():
            await conn.run(sa.insert(probe).values(n=n + 1))
        txs = [await conn.scalar("SELECT txid_current()") for _ in range(2)]
        if n < 0:
            raise Problem(409, "Conflict", "refused after writing")
        return {"txs": txs}

    app.include_router(router)
    async with client_of(app) as c:
        ok = (await c.post("/probe/1")).json()
        assert (await c.post("/probe/-10")).status_code == 409
        again = (await c.post("/probe/5")).json()
    assert len(set(ok["txs"])) == 1 and len(set(again["txs"])) == 1 and ok["txs"] != again["txs"]
    async with clean_db.transaction() as conn:
        rows = sorted(await conn.scalars(sa.select(probe.c.n)))
        await conn.run("DROP TABLE write_probe")
    assert rows == [1, 2, 5, 6]


async def test_the_connection_is_taken_after_the_dependencies(make_app, client_of):
    """A refused caller costs no connection (broken on purpose by opening the connection
    before solving the dependencies: the pool serves the 401s too)."""
    app = make_app()
    router = _probe_router()

    @router.post("/probe")
    async def probe(principal: Principal = Depends(authenticated), conn: Conn = Connection):
        return await conn.scalar("SELECT 1")

    app.include_router(router)
    async with client_of(app) as c:
        pool = await app.state.ctx.db.pool("writes")
        before = pool.get_stats().get("requests_num", 0)
        for _ in range(5):
            assert (await c.post("/probe")).status_code == 401
        assert pool.get_stats().get("requests_num", 0) == before


async def test_a_failed_commit_is_not_a_success(make_app, client_of, clean_db):
    """The commit happens before the response is sent: a constraint checked at commit time
    refuses the request (broken on purpose by committing after the response: a 201 would
    be sent for a row that never existed)."""
    app = make_app()
    async with clean_db.transaction() as conn:
        await conn.run("DROP TABLE IF EXISTS commit_probe")
        await conn.run("CREATE TABLE commit_probe (n int UNIQUE DEFERRABLE INITIALLY DEFERRED)")
    router = _probe_router()

    @router.post("/probe", status_code=201)
    async def probe(conn: Conn = Connection):
        await conn.run("INSERT INTO commit_probe VALUES (1), (1)")
        return {"ok": True}

    app.include_router(router)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        answer = await c.post("/probe")
    async with clean_db.transaction() as conn:
        left = await conn.scalar("SELECT count(*) FROM commit_probe")
        await conn.run("DROP TABLE commit_probe")
    assert answer.status_code >= 400 and left == 0
