"""The worker's part: queued messages are rows claimed by a poller of the dispatch loop."""
from __future__ import annotations


def add_tasks(huey, ctx) -> None:
    from myhibachi.plugins.comms.service import dispatch_due

    ctx.add_poller("comms", dispatch_due)
