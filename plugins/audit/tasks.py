"""A daily check of the audit trail's hash chain: a core periodic job, at 03:41 UTC."""
from __future__ import annotations

from myhibachi.core import periodic


class BrokenChain(Exception):
    """Raised by the nightly check, so the scheduler logs it and keeps it in periodic_jobs.last_error."""


async def verify_chain(conn, ctx) -> dict:
    from myhibachi.plugins.audit.service import verify

    result = await verify(conn)
    if not result["ok"]:
        raise BrokenChain(f"audit trail broken at row {result['seq']} ({result['id']}): {result['reason']}")
    return result


def add_tasks(huey, ctx) -> None:
    periodic(ctx, "audit.verify_chain", verify_chain, cron="41 3 * * *")
