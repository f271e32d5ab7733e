"""The worker's part: due reminders are rows claimed by a poller of the dispatch loop."""
from __future__ import annotations


def add_tasks(huey, ctx) -> None:
    from myhibachi.plugins.reminders.service import dispatch_due

    ctx.add_poller("reminders", dispatch_due)
