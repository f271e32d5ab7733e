"""The worker's part: bulk export jobs, a page per poll; expired output deleted hourly."""
from __future__ import annotations


def add_tasks(huey, ctx) -> None:
    from myhibachi.core import periodic
    from myhibachi.plugins.customer_export import bulk

    ctx.add_poller("customer_export", bulk.step)
    periodic(ctx, "customer_export.expire", bulk.expire, every=3600)
