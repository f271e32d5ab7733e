"""The worker's part: queued conversation texts are embedded in batches by a poller."""
from __future__ import annotations


def add_tasks(huey, ctx) -> None:
    from myhibachi.plugins.embeddings.service import embed_queued

    ctx.add_poller("embeddings", embed_queued)
