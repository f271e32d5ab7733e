"""The read-only connection of the hottest GET routes: no transaction, and only on GETs."""
from __future__ import annotations

import sqlalchemy as sa
from fastapi.routing import APIRoute

from myhibachi.core.db import get_read_conn
from myhibachi.core.plugins import discover

# as the routers declare them, before their prefixes
HOT_READS = {"/customers/me", "/bookings", "/bookings/{booking_id}", "/availability"}


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
    assert {path for _, path in users} >= HOT_READS
    assert {method for method, _ in users} == {"GET"}


async def test_read_only_connection_runs_each_statement_alone(database):
    """Two statements on ``Database.read()`` run in two transactions; on ``begin()`` in one."""
    query = sa.text("SELECT txid_current()")
    async with database.read() as conn:
        first, second = (await conn.execute(query)).scalar(), (await conn.execute(query)).scalar()
    assert first != second
    async with database.begin() as conn:
        first, second = (await conn.execute(query)).scalar(), (await conn.execute(query)).scalar()
    assert first == second
    # the pooled connection goes back to transactions for the next user
    async with database.begin() as conn:
        first, second = (await conn.execute(query)).scalar(), (await conn.execute(query)).scalar()
    assert first == second
