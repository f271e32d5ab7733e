"""Periodic clean-up of ended admin sessions."""
from __future__ import annotations

from huey import crontab

from myhibachi.core.tasks import run


def register(huey, ctx) -> None:
    @huey.periodic_task(crontab(minute="17"), name="admin_rbac.purge_sessions")
    def purge_sessions() -> int:
        from myhibachi.plugins.admin_rbac.service import purge_sessions as purge

        async def body() -> int:
            async with ctx.db.transaction() as conn:
                return await purge(conn)

        return run(body())
