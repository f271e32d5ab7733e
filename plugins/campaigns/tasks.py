"""The worker's part: due campaigns listed, due A/B tests decided, due recipients handed to comms."""
from __future__ import annotations


def add_tasks(huey, ctx) -> None:
    from myhibachi.plugins.campaigns.service import dispatch_due

    ctx.add_poller("campaigns", dispatch_due)
