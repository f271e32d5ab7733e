"""The worker's part: intent classifiers trained one per poll."""
from __future__ import annotations


def add_tasks(huey, ctx) -> None:
    from myhibachi.plugins.ml_ops import training

    ctx.add_poller("ml_ops.training", training.step)
