"""Periodic clean-up of ended admin sessions: a core periodic job, hourly at minute 17."""
from __future__ import annotations

from myhibachi.core import periodic


async def purge_sessions(conn, ctx) -> int:
    from myhibachi.plugins.admin_rbac.service import purge_sessions as purge

    return await purge(conn)


def add_tasks(huey, ctx) -> None:
    periodic(ctx, "admin_rbac.purge_sessions", purge_sessions, cron="17 * * * *")
