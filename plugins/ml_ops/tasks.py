"""The worker's part: intent classifiers trained one per poll, batches a chunk per poll."""
from __future__ import annotations


def add_tasks(huey, ctx) -> None:
    from myhibachi.plugins.ml_ops import batch, training

    ctx.add_poller("ml_ops.training", training.step)
    ctx.add_poller("ml_ops.batches", batch.step)
