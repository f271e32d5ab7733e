"""The worker's part: reconciling unsettled deposits with the provider, as a periodic job."""
from __future__ import annotations

from myhibachi.core import periodic


def add_tasks(huey, ctx) -> None:
    from myhibachi.plugins.deposits.service import reconcile

    cfg = ctx.plugins.get("deposits").settings
    # One worker at a time runs it (the job's row is claimed), once per period across restarts.
    periodic(ctx, "deposits.reconcile", lambda conn, ctx: reconcile(ctx, cfg), every=cfg.reconcile_every_minutes * 60)
