"""The worker's part: custom reports, one rendered per poll."""
from __future__ import annotations


def add_tasks(huey, ctx) -> None:
    from myhibachi.plugins.payment_history import reports

    ctx.add_poller("payment_history.reports", reports.step)
