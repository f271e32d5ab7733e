"""The worker's part: intent classifiers trained one per poll, fine-tuning jobs started and
checked, batches a chunk per poll; expired cache entries deleted hourly."""
from __future__ import annotations


def add_tasks(huey, ctx) -> None:
    from myhibachi.core import periodic
    from myhibachi.plugins.ml_ops import batch, fine_tune, service, training

    ctx.add_poller("ml_ops.training", training.step)
    ctx.add_poller("ml_ops.fine_tuning", fine_tune.step)
    ctx.add_poller("ml_ops.batches", batch.step)
    periodic(ctx, "ml_ops.cache_expiry", service.expire_cache, every=3600)
