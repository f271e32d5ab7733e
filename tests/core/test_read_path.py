"""The read-only connections of the hottest GET routes: no transaction, and only on GETs."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from fastapi import Request
from fastapi.routing import APIRoute

from myhibachi.core.db import get_read_conn
from myhibachi.core.plugins import discover

def _uses_read_conn(route) -> bool:
    stack = [route.dependant]
    while stack:
        dep = stack.pop()
        if dep.call is get_read_conn:
            return True
        stack.extend(dep.dependencies)
    return False


def _routes(app):
    from fastapi import routing

    contexts = getattr(routing, "iter_route_contexts", None)
    routes = [c.route for c in contexts(app.routes)] if contexts else app.routes
    return [r for r in routes if isinstance(r, APIRoute)]


async def test_read_only_connection_only_on_get_routes(make_app):
    """Broken on purpose by giving a write route ``ReadOnly``: its writes would commit one by one."""
    app = make_app(list(discover()))
    users = {(method, r.path) for r in _routes(app) if _uses_read_conn(r) for method in r.methods}
    assert {method for method, _ in users} <= {"GET"}


async def test_reading_refuses_other_methods(make_app):
    """Broken on purpose by dropping the method check of ``reading()``: the POST below would
    run its statement on an autocommit connection and answer 200."""
    from fastapi.testclient import TestClient

    from myhibachi.core.db import fetch_one, reading

    app = make_app()

    @app.post("/probe")
    async def probe(request: Request):
        async with reading(request) as conn:
            return await fetch_one(conn, sa.select(sa.literal(1).label("one")))

    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/probe").status_code == 500


async def test_hot_reads_use_the_read_pool_outside_transactions(make_app, client_of):
    """The profile, the bookings list and a day's availability come from the app's psycopg read pool
    in autocommit mode (broken on purpose: a read pool without autocommit makes the
    second assertion fail, as the statements then share a transaction)."""
    from fastapi.testclient import TestClient

    app = make_app()
    with TestClient(app) as client:
        signup = client.post("/v1/customers", json={"email": "pool@example.com", "password": "correct horse 1",
                                                    "name": "Pool"}).json()
        auth = {"Authorization": f"Bearer {signup['access_token']}"}
        pool = app.state.ctx.pools.pools["reads"]
        before = pool.get_stats().get("requests_num", 0)
        assert client.get("/v1/customers/me", headers=auth).json()["email"] == "pool@example.com"
        assert client.get("/v1/bookings", headers=auth).json() == {"items": [], "next_cursor": None}
        day = (datetime.now(timezone.utc) + timedelta(days=10)).date().isoformat()
        assert client.get(f"/v1/availability?from={day}&to={day}", headers=auth).json()["slots"]
        assert pool.get_stats().get("requests_num", 0) - before == 3
        async with pool.connection() as conn:
            first = (await (await conn.execute("SELECT txid_current()")).fetchone())[0]
            second = (await (await conn.execute("SELECT txid_current()")).fetchone())[0]
        assert first != second


async def test_read_only_routes_answer_sqlalchemy_and_the_fast_lane(make_app):
    """``conn = ReadOnly``: the fast lane and SQLAlchemy's ``execute`` (what a plugin's hook
    may use) on the same pooled connection, each statement in a transaction of its own
    (broken on purpose: without ``RequestConn.execute`` the probe answers 500)."""
    from fastapi.testclient import TestClient

    from myhibachi.core.db import ReadOnly, fetch_one

    app = make_app()
    now = sa.select(sa.func.txid_current().label("tx"), sa.func.pg_backend_pid().label("pid"))

    @app.get("/probe")
    async def probe(conn=ReadOnly):
        fast = [await fetch_one(conn, now) for _ in range(2)]
        slow = [(await conn.execute(now)).mappings().one() for _ in range(2)]
        return {"fast": fast, "slow": [dict(row) for row in slow], "scalar": await conn.scalar(now)}

    with TestClient(app) as client:
        pool = app.state.ctx.pools.pools["reads"]
        before = pool.get_stats().get("requests_num", 0)
        got = client.get("/probe").json()
        assert pool.get_stats().get("requests_num", 0) - before == 1
    assert len({row["tx"] for row in got["fast"] + got["slow"]} | {got["scalar"]}) == 5
    assert len({row["pid"] for row in got["fast"] + got["slow"]}) == 1


async def test_a_write_request_is_one_transaction_for_sqlalchemy_and_the_fast_lane(make_app, client_of, clean_db):
    """``conn = Transaction``: statements through SQLAlchemy (savepoints included) and the
    fast lane share one transaction, committed together or rolled back together (broken
    on purpose: lending SQLAlchemy a connection of its own pool makes ``tx`` differ and
    the refused request keep its first row)."""
    from myhibachi.core.db import Transaction, fetch_one, run
    from myhibachi.core.errors import Problem

    app = make_app()
    async with clean_db.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE IF NOT EXISTS write_probe (n int)"))
        await conn.execute(sa.text("TRUNCATE write_probe"))
    probe = sa.table("write_probe", sa.column("n"))
    tx = sa.select(sa.func.txid_current().label("tx"))

    @app.post("/probe/{n}")
    async def write(n: int, conn=Transaction):
        await run(conn, sa.insert(probe).values(n=sa.bindparam("n")), {"n": n})
        async with conn.begin_nested():
            await conn.execute(sa.insert(probe).values(n=n + 1))
        txs = [(await fetch_one(conn, tx))["tx"], await conn.scalar(tx)]
        if n < 0:
            raise Problem(409, "Conflict", "refused after writing")
        return {"txs": txs}

    async with client_of(app) as c:
        ok = (await c.post("/probe/1")).json()
        assert (await c.post("/probe/-10")).status_code == 409
        again = (await c.post("/probe/5")).json()
    assert len(set(ok["txs"])) == 1 and len(set(again["txs"])) == 1 and ok["txs"] != again["txs"]
    async with clean_db.connect() as conn:
        rows = sorted((await conn.execute(sa.select(probe.c.n))).scalars())
        await conn.execute(sa.text("DROP TABLE write_probe"))
        await conn.commit()
    assert rows == [1, 2, 5, 6]
