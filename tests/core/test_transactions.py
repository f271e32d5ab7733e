"""Every route's transaction commits before its response is sent."""
from fastapi.routing import APIRoute

from myhibachi.core.db import get_conn
from myhibachi.core.plugins import discover


def _dependants(dependant):
    stack = [dependant]
    while stack:
        dep = stack.pop()
        yield dep
        stack.extend(dep.dependencies)


def _routes(app):
    from fastapi import routing

    contexts = getattr(routing, "iter_route_contexts", None)
    routes = [c.route for c in contexts(app.routes)] if contexts else app.routes
    return [r for r in routes if isinstance(r, APIRoute)]


async def test_every_route_takes_the_transaction_in_function_scope(make_app):
    """Broken on purpose by declaring ``Depends(get_conn)`` (request scope) on any route: the
    commit would then run after a 2xx was sent, and this test names that route."""
    app = make_app(list(discover()))
    late = [f"{sorted(r.methods)} {r.path}" for r in _routes(app)
            for dep in _dependants(r.dependant) if dep.call is get_conn and dep.scope != "function"]
    users = [r.path for r in _routes(app) if any(d.call is get_conn for d in _dependants(r.dependant))]
    assert users, "no route uses the request transaction"
    assert late == []
