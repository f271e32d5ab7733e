"""The worker's part: lapsed offers move on, expired entries stop waiting."""
from __future__ import annotations


def add_tasks(huey, ctx) -> None:
    from myhibachi.plugins.waitlist.service import lapse_due

    ctx.add_poller("waitlist", lapse_due)
