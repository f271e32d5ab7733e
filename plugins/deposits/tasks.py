"""The worker's part: a poller that reconciles unsettled deposits with the provider."""
from __future__ import annotations

import time


def reconcile_poller(cfg):
    """Runs ``service.reconcile`` at most once per ``reconcile_every_minutes`` per worker."""
    last = {"at": float("-inf")}

    async def poll(ctx) -> int:
        from myhibachi.plugins.deposits.service import reconcile

        if time.monotonic() - last["at"] < cfg.reconcile_every_minutes * 60:
            return 0
        last["at"] = time.monotonic()
        return await reconcile(ctx, cfg)

    return poll


def add_tasks(huey, ctx) -> None:
    ctx.add_poller("deposits.reconcile", reconcile_poller(ctx.plugins.get("deposits").settings))
