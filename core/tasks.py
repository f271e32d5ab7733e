"""Background work: huey for on-demand tasks, the worker's dispatch loop for the rest.

The dispatch loop delivers events, runs pollers over due rows and runs periodic jobs
(:mod:`myhibachi.core.scheduled`): everything time-based. Huey runs only tasks enqueued on
demand, on Redis in production (``REDIS_URL``) and on SQLite on the embedded default; its
periodic tasks are not used. Task bodies are async functions run on the worker's event
loop (``run``).
"""
from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Awaitable, Callable

from huey import RedisHuey, SqliteHuey

log = logging.getLogger("myhibachi.tasks")

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def make_huey(settings):
    if settings.redis_url:
        return RedisHuey("myhibachi", url=settings.redis_url)
    # 0600 before SQLite opens it (its -wal and -shm files take the database file's mode)
    return SqliteHuey("myhibachi", filename=str(settings.private_file("tasks.db")))


def _worker_loop() -> asyncio.AbstractEventLoop:
    """One event loop for all task bodies of this process, on its own thread."""
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="myhibachi-tasks", daemon=True).start()
    return _loop


def run(coro: Awaitable[Any], timeout: float | None = 300) -> Any:
    """Run an async task body from a huey (sync) task."""
    return asyncio.run_coroutine_threadsafe(coro, _worker_loop()).result(timeout)


def async_task(huey, ctx_getter: Callable[[], Any], **task_kw):
    """Decorator: declare ``async def body(ctx, ...)`` as a huey task."""

    def decorate(body):
        def task(*args, **kwargs):
            return run(body(ctx_getter(), *args, **kwargs))

        task.__name__ = body.__name__
        task.__qualname__ = body.__qualname__
        task.__module__ = body.__module__
        return huey.task(**task_kw)(task)

    return decorate


def register_core_tasks(ctx) -> None:
    """The core's periodic work: periodic jobs in the worker's dispatch loop, not huey's."""
    from myhibachi.core.events import purge_settled
    from myhibachi.core.idempotency import PURGE_EVERY, purge_expired
    from myhibachi.core.scheduled import periodic

    periodic(ctx, "core.idempotency_expiry", lambda conn, ctx: purge_expired(conn), every=PURGE_EVERY)
    periodic(ctx, "core.outbox_retention", lambda conn, ctx: purge_settled(conn), every=3600)


async def dispatch_once(ctx, stop: asyncio.Event | None = None) -> int:
    """Deliver due events, run every poller once and every due periodic job; returns the rows
    the deliveries and pollers handled (periodic jobs are not due again until their next period,
    so they do not count towards another round)."""
    from myhibachi.core import events, scheduled

    done = await events.deliver_due(ctx, stop=stop)
    for name, poller in scheduled.pollers(ctx).items():
        if stop is not None and stop.is_set():
            break
        try:
            done += await poller(ctx)
        except Exception:
            log.exception("poller %s failed", name)
    if stop is None or not stop.is_set():
        try:
            await scheduled.run_periodic(ctx)
        except Exception:
            log.exception("periodic jobs failed")
    return done


async def dispatch_forever(ctx, *, interval: float = 1.0, stop: asyncio.Event | None = None) -> None:
    """Run ``dispatch_once`` whenever an event is published (LISTEN/NOTIFY) and every ``interval``
    seconds, until ``stop`` is set; the current delivery finishes first."""
    import psycopg

    from myhibachi.core.events import CHANNEL

    stop = stop or asyncio.Event()
    stopping = asyncio.ensure_future(stop.wait())
    url = ctx.db.conninfo
    try:
        while not stop.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(url, autocommit=True) as listen:
                    await listen.execute(f"LISTEN {CHANNEL}")
                    while not stop.is_set():
                        while not stop.is_set() and await dispatch_once(ctx, stop):
                            pass
                        woken = asyncio.ensure_future(_next_notify(listen))
                        await asyncio.wait({woken, stopping}, timeout=interval,
                                           return_when=asyncio.FIRST_COMPLETED)
                        if not woken.done():
                            woken.cancel()
                            await asyncio.gather(woken, return_exceptions=True)
                        elif woken.exception() is not None:
                            raise woken.exception()
            except Exception as exc:
                if stop.is_set():
                    break
                log.warning("dispatch loop failed (%r); retrying", exc)
                await asyncio.wait({stopping}, timeout=min(interval * 2, 5))
    finally:
        stopping.cancel()


async def _next_notify(listen) -> None:
    async for _ in listen.notifies(stop_after=1):
        return
