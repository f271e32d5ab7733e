"""The worker's part: intent classifiers trained one per poll, fine-tuning jobs started and
checked, batches a chunk per poll."""
from __future__ import annotations


def add_tasks(huey, ctx) -> None:
    from myhibachi.plugins.ml_ops import batch, fine_tune, training

    ctx.add_poller("ml_ops.training", training.step)
    ctx.add_poller("ml_ops.fine_tuning", fine_tune.step)
    ctx.add_poller("ml_ops.batches", batch.step)
