"""A daily check of the audit trail's hash chain (03:41 UTC) and its anchor every 15 minutes:
core periodic jobs."""
from __future__ import annotations

from myhibachi.core import periodic


class BrokenChain(Exception):
    """Raised by the nightly check, so the scheduler logs it and keeps it in periodic_jobs.last_error."""


async def verify_chain(conn, ctx) -> dict:
    from myhibachi.plugins.audit.service import verify

    result = await verify(conn, ctx.settings)
    if not result["ok"]:
        raise BrokenChain(f"audit trail broken at row {result['seq']} ({result['id']}): {result['reason']}")
    return result


async def anchor_chain(conn, ctx) -> dict:
    from myhibachi.plugins.audit.service import anchor

    result = await anchor(conn, ctx.settings, ctx.plugins.get("audit").settings)
    if not result["ok"]:
        raise BrokenChain(f"audit trail not anchored, broken at row {result['seq']}: {result['reason']}")
    failed = {name: state for name, state in result["published"].items() if state != "ok"}
    if failed:  # the file and the log line are written; the outside copy is retried at the next run
        raise BrokenChain(f"audit anchor not published: {failed}")
    return result


def add_tasks(huey, ctx) -> None:
    periodic(ctx, "audit.verify_chain", verify_chain, cron="41 3 * * *")
    periodic(ctx, "audit.anchor", anchor_chain, every=900)
