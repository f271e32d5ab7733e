"""The worker's part: queued conversation texts are embedded in batches by a poller, and rows
of an older model embedded again by the current one."""
from __future__ import annotations


def add_tasks(huey, ctx) -> None:
    from myhibachi.plugins.embeddings.service import work

    ctx.add_poller("embeddings", work)
