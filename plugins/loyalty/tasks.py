"""The worker's part: expiring lots are rows claimed by a poller of the dispatch loop."""
from __future__ import annotations


def add_tasks(huey, ctx) -> None:
    from myhibachi.plugins.loyalty.service import expire_due

    ctx.add_poller("loyalty", expire_due)
