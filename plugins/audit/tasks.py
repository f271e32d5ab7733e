"""A daily check of the audit trail's hash chain."""
from __future__ import annotations

import logging

from huey import crontab

from myhibachi.core.tasks import run

log = logging.getLogger("myhibachi.audit")


def register(huey, ctx) -> None:
    @huey.periodic_task(crontab(minute="41", hour="3"), name="audit.verify_chain")
    def verify_chain() -> dict:
        from myhibachi.plugins.audit.service import verify

        async def body() -> dict:
            async with ctx.db.read() as conn:
                return await verify(conn)

        result = run(body(), timeout=None)
        if not result["ok"]:
            log.error("audit trail broken at row %s (%s): %s", result["seq"], result["id"], result["reason"])
        return result
