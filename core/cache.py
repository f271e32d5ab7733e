"""Process-local copies of rarely changing rows, dropped in every process when they change.

A lookup that every booking makes (which location serves a zip code, say) costs a
statement each time although its answer changes a few times a year. ``SharedCache``
keeps such answers in the process while it listens to PostgreSQL's notifications on one
channel; a writer calls ``await cache.changed(conn, name)`` in its transaction, and when
that commits every listening process drops its copies of ``name``.

- Only while the listener is connected does the cache keep anything: before the
  lifespan starts it, in a CLI or a worker without it, and while it reconnects, every
  ``get`` loads afresh.
- Answers are loaded on an autocommit connection of the read pool, so they are committed
  data, never the caller's unfinished transaction.
- A load that a notification overtook is answered but not kept.
- The writing process stops keeping ``name`` until its own notification comes back, or
  for ``settle`` seconds when the transaction rolled back and none comes: it reads its
  own writes at once, other processes as soon as the notification reaches them.
- A change made outside the application (SQL by hand) is seen after ``NOTIFY
  myhibachi_cache, '<name>'`` or a restart.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

import sqlalchemy as sa

from myhibachi.core.db import Conn

log = logging.getLogger("myhibachi.cache")

CHANNEL = "myhibachi_cache"
_MISSING = object()


_NOTIFY = sa.select(sa.func.pg_notify(sa.bindparam("channel"), sa.bindparam("payload")))


class SharedCache:
    def __init__(self, settle: float = 5.0, max_entries: int = 10_000) -> None:
        self.settle = settle
        self.max_entries = max_entries
        self.live = False
        self._values: dict[str, dict[Hashable, Any]] = {}
        self._generation = 0
        self._unsettled: dict[str, dict[str, float]] = {}  # name -> own notifications on their way
        self._task: asyncio.Task | None = None
        self._pool = None

    async def fetch_one(self, name: str, stmt, params: dict[str, Any], conn) -> dict[str, Any] | None:
        """``db.fetch_one`` of a pre-built statement, answered from the cache when it can be;
        ``conn`` runs it when the cache is not live."""


        async def load():
            if self._pool is None or not self.live:
                return await conn.fetch_one(stmt, params)
            async with self._pool.connection() as fresh:
                return await Conn(fresh, transaction=False).fetch_one(stmt, params)

        return await self.get(name, (id(stmt), *sorted(params.items())), load)

    async def get(self, name: str, key: Hashable, load: Callable[[], Awaitable[Any]]) -> Any:
        """The cached answer for ``(name, key)``, or ``await load()`` (kept when it may be)."""
        if not self.live:
            return await load()
        bucket = self._values.get(name)
        if bucket is not None:
            value = bucket.get(key, _MISSING)
            if value is not _MISSING:
                return value
        generation = self._generation
        value = await load()
        if self.live and generation == self._generation and not self._unsettling(name):
            bucket = self._values.setdefault(name, {})
            if len(bucket) >= self.max_entries:
                bucket.clear()
            bucket[key] = value
        return value

    async def changed(self, conn, name: str) -> None:
        """Tell every process that ``name`` changed, when ``conn``'s transaction commits."""
        token = uuid.uuid4().hex
        await conn.run(_NOTIFY, {"channel": CHANNEL, "payload": f"{name} {token}"})
        self._drop(name)
        self._unsettled.setdefault(name, {})[token] = time.monotonic() + self.settle

    def _unsettling(self, name: str) -> bool:
        pending = self._unsettled.get(name)
        if not pending:
            return False
        now = time.monotonic()
        for token in [t for t, until in pending.items() if until <= now]:
            del pending[token]
        return bool(pending)

    def _heard(self, payload: str) -> None:
        name, _, token = payload.partition(" ")
        self._drop(name)
        self._unsettled.get(name, {}).pop(token, None)

    def _drop(self, name: str) -> None:
        self._generation += 1
        self._values.pop(name, None)

    def _clear(self) -> None:
        self._generation += 1
        self._values.clear()

    def start(self, pool) -> None:
        """Listen on a connection to ``pool``'s database (a task of the running loop); loads
        then run on the pool's autocommit connections."""
        if self._task is None:
            self._pool = pool
            self._task = asyncio.get_running_loop().create_task(self._listen(pool.conninfo), name="myhibachi-cache")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        self.live = False
        self._pool = None
        self._clear()

    async def _listen(self, conninfo: str, retry: float = 1.0) -> None:
        import psycopg

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self._clear()
                    self.live = True
                    async for note in conn.notifies():
                        self._heard(note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a dropped connection: stop caching until it is back
                log.warning("cache listener disconnected (%s); retrying in %.0f s", exc, retry)
            finally:
                self.live = False
                self._clear()
            await asyncio.sleep(retry)
