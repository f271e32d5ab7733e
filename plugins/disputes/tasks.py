"""The worker's part: reconciliation runs, a provider page per poll; bulk jobs, an item per poll."""
from __future__ import annotations


def add_tasks(huey, ctx) -> None:
    from myhibachi.plugins.disputes import bulk, reconcile

    ctx.add_poller("disputes.reconcile", reconcile.step)
    ctx.add_poller("disputes.bulk", bulk.step)
