"""The worker's part: the rolling horizon is a periodic job."""
from __future__ import annotations


def add_tasks(huey, ctx) -> None:
    from myhibachi.core import periodic
    from myhibachi.plugins.recurring.service import extend_horizon

    periodic(ctx, "recurring.horizon", extend_horizon, every=3600)
