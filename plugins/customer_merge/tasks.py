"""The worker's part: name and address keys for customers who have none yet."""
from __future__ import annotations


def add_tasks(huey, ctx) -> None:
    from myhibachi.core import periodic
    from myhibachi.plugins.customer_merge.service import backfill_keys

    periodic(ctx, "customer_merge.match_keys", backfill_keys, every=300)
