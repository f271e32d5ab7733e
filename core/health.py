"""Readiness: the checks behind ``/readyz``, run in the background and answered from memory.

Each check has a timeout, and a blocking client (the task queue's Redis or SQLite) runs on a
thread, so a stalled dependency makes ``/readyz`` answer 503 quickly instead of stalling the
event loop (and every other request on the worker). ``/readyz`` answers the last result while
it is fresh (``2 * interval``); else it runs the checks itself, within the same timeouts.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

log = logging.getLogger("myhibachi.health")


class Readiness:
    def __init__(self, ctx, *, interval: float = 1.0, timeout: float = 2.0) -> None:
        self.ctx = ctx
        self.interval = interval
        self.timeout = timeout
        self.last: tuple[float, bool, dict[str, Any]] | None = None
        self._queue_probe: asyncio.Future | None = None  # a queue call still running on its thread
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="readiness")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # answer() then checks inline; the loop keeps going
                log.exception("readiness checks failed")
            await asyncio.sleep(self.interval)

    async def answer(self) -> tuple[bool, dict[str, Any]]:
        if self.last is None or time.monotonic() - self.last[0] > 2 * self.interval:
            await self.refresh()
        return self.last[1], self.last[2]

    async def refresh(self) -> None:
        database, queue = await asyncio.gather(self._timed(self._database()), self._timed(self._queue()))
        checks = {"database": database, "queue": queue, "flags": self._flags(), "plugins": self._plugins()}
        ok = all(check["ok"] for check in checks.values())
        self.last = (time.monotonic(), ok, checks)

    async def _timed(self, probe) -> dict[str, Any]:
        try:
            await asyncio.wait_for(probe, self.timeout)
            return {"ok": True}
        except asyncio.TimeoutError:
            return {"ok": False, "detail": f"no answer within {self.timeout:g}s"}
        except Exception as exc:
            return {"ok": False, "detail": type(exc).__name__}

    async def _database(self) -> None:
        await self.ctx.db.ping()

    async def _queue(self) -> None:
        # A call stuck on its thread is waited on again rather than joined by a second one.
        if self._queue_probe is None or self._queue_probe.done():
            self._queue_probe = asyncio.ensure_future(asyncio.to_thread(self.ctx.huey.storage.queue_size))
        await asyncio.shield(self._queue_probe)

    def _flags(self) -> dict[str, Any]:
        flags = self.ctx.flags
        check: dict[str, Any] = {"ok": flags.ready, "mode": "server" if flags.server_mode else "file"}
        if flags.server_mode:
            age = flags.age()
            check["age_seconds"] = None if age is None else round(age, 1)
            check["reachable"] = flags.reachable
        if flags.ready:
            known = set(flags.definitions())
            wanted = {r.flag for r in self.ctx.plugins.records.values() if r.flag and r.state == "enabled"}
            missing = sorted(wanted - known)
            if missing:  # their plugins stay off until the flag exists (`myhibachi flags sync`)
                check["missing"] = missing
        return check

    def _plugins(self) -> dict[str, Any]:
        failed = {r.name: r.reason for r in self.ctx.plugins.records.values() if r.state == "failed"}
        return {"ok": not failed, "failed": failed} if failed else {"ok": True}
