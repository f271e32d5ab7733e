"""Background work: huey for tasks, and the worker's dispatch loop for events and due rows.

Huey runs on Redis in production (``REDIS_URL``) and on SQLite on the embedded default.
Task bodies are async functions run on the worker's event loop (``run``).
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
    return SqliteHuey("myhibachi", filename=str(settings.home_dir / "tasks.db"))


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
    """Nothing periodic in huey: events and due rows run in the worker's dispatch loop."""


async def dispatch_once(ctx) -> int:
    """Deliver due events and run every poller once; returns rows handled."""
    from myhibachi.core import events, scheduled

    done = await events.deliver_due(ctx)
    for name, poller in scheduled.pollers(ctx).items():
        try:
            done += await poller(ctx)
        except Exception:
            log.exception("poller %s failed", name)
    return done


async def dispatch_forever(ctx, *, interval: float = 1.0, stop: asyncio.Event | None = None) -> None:
    """Run ``dispatch_once`` whenever events are published (LISTEN/NOTIFY) or every ``interval``."""
    import psycopg

    stop = stop or asyncio.Event()
    url = ctx.db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    while not stop.is_set():
        try:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as listen:
                from myhibachi.core.events import CHANNEL

                await listen.execute(f"LISTEN {CHANNEL}")
                while not stop.is_set():
                    while await dispatch_once(ctx):
                        pass
                    try:
                        gen = listen.notifies(timeout=interval, stop_after=1)
                        async for _ in gen:
                            pass
                    except TypeError:  # older psycopg: no timeout on notifies()
                        await asyncio.sleep(interval)
        except Exception as exc:
            if stop.is_set():
                break
            log.warning("dispatch loop lost its connection (%s); retrying", exc)
            await asyncio.sleep(min(interval * 2, 5))
