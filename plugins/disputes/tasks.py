"""The worker's part: reconciliation runs, a provider page per poll; bulk jobs, an item per
poll; evidence deadline reminders, a periodic job."""
from __future__ import annotations


def add_tasks(huey, ctx) -> None:
    from myhibachi.core import periodic
    from myhibachi.plugins.disputes import bulk, reconcile, service

    ctx.add_poller("disputes.reconcile", reconcile.step)
    ctx.add_poller("disputes.bulk", bulk.step)
    every = ctx.plugins.get("disputes").settings.deadline_check_minutes * 60
    periodic(ctx, "disputes.deadline_reminders", service.remind_deadlines, every=every)
